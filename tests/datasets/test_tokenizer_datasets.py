"""UnlabeledImageFolder, ImageNetStyleDataset, LoadImageChecked and the skip report."""
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from beitlab.datasets.transforms.loading import CorruptImageError
from beitlab.registry import DATASETS, HOOKS
from beitlab.utils import register_all_modules


@pytest.fixture(scope='module', autouse=True)
def _registered():
    register_all_modules(init_default_scope=True)


def make_tree(root: Path) -> None:
    rng = np.random.default_rng(0)
    for cls, names in {'cat': ['a.png', 'sub/b.JPG'], 'dog': ['c.bmp', 'd.txt']}.items():
        for name in names:
            path = root / 'train' / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith('.txt'):
                path.write_text('not an image')
            else:
                Image.fromarray(rng.integers(0, 255, (6, 5, 3), dtype=np.uint8)).save(
                    path, format={'.png': 'PNG', '.JPG': 'JPEG', '.bmp': 'BMP'}[path.suffix])
    (root / 'train' / 'dog' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')


PIPELINE = [dict(type='LoadImageChecked'), dict(type='PackImageInputs')]


def test_unlabeled_image_folder_is_recursive(tmp_path):
    make_tree(tmp_path)
    ds = DATASETS.build(dict(type='UnlabeledImageFolder', data_root=str(tmp_path),
                             data_prefix=dict(img_path='train')))
    rel = [str(Path(d['img_path']).relative_to(tmp_path / 'train'))
           for d in (ds.get_data_info(i) for i in range(len(ds)))]
    assert rel == ['cat/a.png', 'cat/sub/b.JPG', 'dog/broken.png', 'dog/c.bmp']


def test_imagenet_style_folder_and_list(tmp_path):
    make_tree(tmp_path)
    ds = DATASETS.build(dict(type='ImageNetStyleDataset', data_root=str(tmp_path),
                             data_prefix=dict(img_path='train')))
    assert ds.metainfo['classes'] == ('cat', 'dog')
    assert [ds.get_data_info(i)['gt_label'] for i in range(len(ds))] == [0, 0, 1, 1]
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / 'train.txt').write_text('dog/c.bmp 1\ncat/a.png 0\n')
    (tmp_path / 'meta' / 'classes.txt').write_text('cat\ndog\n')
    ds = DATASETS.build(dict(type='ImageNetStyleDataset', data_root=str(tmp_path),
                             ann_file='meta/train.txt', data_prefix=dict(img_path='train'),
                             pipeline=PIPELINE))
    assert len(ds) == 2 and ds.metainfo['classes'] == ('cat', 'dog')
    item = ds[0]
    assert item['inputs'].shape == (3, 6, 5) and item['inputs'].dtype == torch.uint8
    assert item['data_samples'].gt_label.tolist() == [1]
    assert item['data_samples'].img_path.endswith('dog/c.bmp')


def test_missing_root_names_path_and_converter(tmp_path):
    missing = tmp_path / 'no_such_data'
    for cfg in (dict(type='UnlabeledImageFolder', data_root=str(missing)),
                dict(type='ImageNetStyleDataset', data_root=str(missing),
                     ann_file='meta/train.txt', data_prefix=dict(img_path='train'))):
        with pytest.raises(FileNotFoundError) as err:
            DATASETS.build(cfg)
        assert str(missing) in str(err.value)
        assert 'tools/dataset_converters/fashion_mnist.py --out' in str(err.value)


def test_corrupt_image_raises_naming_file(tmp_path):
    make_tree(tmp_path)
    ds = DATASETS.build(dict(type='UnlabeledImageFolder', data_root=str(tmp_path),
                             data_prefix=dict(img_path='train'), pipeline=PIPELINE))
    with pytest.raises(CorruptImageError, match='broken.png'):
        ds[2]


def test_skip_corrupt_warns_counts_and_reports(tmp_path):
    make_tree(tmp_path)
    ds = DATASETS.build(dict(
        type='UnlabeledImageFolder', data_root=str(tmp_path), data_prefix=dict(img_path='train'),
        pipeline=[dict(type='LoadImageChecked', skip_corrupt=True), dict(type='PackImageInputs')]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        item = ds[2]  # the dataset draws other indices until one is readable
    assert not item['data_samples'].img_path.endswith('broken.png')
    skipped = [str(w.message) for w in caught if 'skipping corrupt image' in str(w.message)]
    assert skipped and all("broken.png'" in m for m in skipped)
    loader = ds.pipeline.transforms[0]
    assert loader.num_skipped == len(skipped)  # (a random redraw may hit broken.png again)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert loader(dict(img_path=str(tmp_path / 'train' / 'dog' / 'broken.png'))) is None
    logged = []
    runner = SimpleNamespace(train_dataloader=SimpleNamespace(dataset=ds), epoch=0,
                             logger=SimpleNamespace(warning=logged.append))
    HOOKS.build(dict(type='CorruptImageReportHook')).after_train_epoch(runner)
    assert logged == [f'epoch 0 train: skipped {len(skipped) + 1} corrupt image(s) this epoch '
                      '(each named in a warning above)']
    assert loader.num_skipped == 0  # reset for the next epoch
