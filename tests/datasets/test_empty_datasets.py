"""An empty dataset (training, validation or test) is an error when it is built, naming the
data root and the annotation file, instead of mmengine's ``need at least one array to
concatenate``."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from beitlab.registry import DATASETS
from beitlab.utils import register_all_modules
from tests.tools_helpers import run_tool

FINETUNE_TINY = 'configs/beit_finetune/beit_vit-fmnist_finetune-lrd0.65_fashion-mnist_tiny.py'


@pytest.fixture(scope='module', autouse=True)
def _registered():
    register_all_modules(init_default_scope=True)


def write_images(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / name)


@pytest.mark.parametrize('test_mode', [False, True])
def test_empty_annotation_list_names_root_and_file(tmp_path, test_mode) -> None:
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / 'val.txt').write_text('\n\n')
    with pytest.raises(ValueError) as info:
        DATASETS.build(dict(type='ImageNetStyleDataset', data_root=str(tmp_path),
                            ann_file='meta/val.txt', test_mode=test_mode))
    text = str(info.value)
    assert 'ImageNetStyleDataset is empty' in text
    assert f"annotation file '{tmp_path}/meta/val.txt' lists no images" in text
    assert f"data root '{tmp_path}'" in text
    assert '<train|val|test>_dataloader.dataset.data_root / ann_file' in text


def test_class_folders_without_images(tmp_path) -> None:
    (tmp_path / 'train' / 'cat').mkdir(parents=True)
    (tmp_path / 'train' / 'dog').mkdir(parents=True)
    (tmp_path / 'train' / 'dog' / 'notes.txt').write_text('no image here')
    with pytest.raises(ValueError, match=r"no image files \(.*\) in the class folders under "
                       rf"'{tmp_path}/train' \(data root '{tmp_path}', ann_file ''\)"):
        DATASETS.build(dict(type='ImageNetStyleDataset', data_root=str(tmp_path),
                            data_prefix=dict(img_path='train')))


def test_unlabeled_folder_without_images_names_root(tmp_path) -> None:
    (tmp_path / 'imgs').mkdir()
    with pytest.raises(FileNotFoundError,
                       match=rf"UnlabeledImageFolder is empty: .* under "
                       rf"'{tmp_path}/imgs' \(data root '{tmp_path}', no annotation file"):
        DATASETS.build(dict(type='UnlabeledImageFolder', data_root=str(tmp_path),
                            data_prefix=dict(img_path='imgs')))


def test_empty_validation_list_fails_before_training(tmp_path) -> None:
    root = tmp_path / 'data'
    write_images(root / 'train' / 'a', [f'{i}.png' for i in range(4)])
    (root / 'meta').mkdir()
    (root / 'meta' / 'train.txt').write_text(''.join(f'a/{i}.png 0\n' for i in range(4)))
    (root / 'meta' / 'val.txt').write_text('')
    options = [f'{k}_dataloader.dataset.data_root={root}' for k in ('train', 'val', 'test')]
    options += ['train_dataloader.dataset.data_prefix.img_path=train',
                'val_dataloader.dataset.data_prefix.img_path=train',
                'test_dataloader.dataset.data_prefix.img_path=train']
    proc = run_tool('train.py', FINETUNE_TINY, '--work-dir', tmp_path / 'w', '--cfg-options',
                    *options, check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith('train.py: error:')]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-3000:]
    assert 'need at least one array' not in proc.stderr
    assert f"annotation file '{root}/meta/val.txt' lists no images" in lines[0], lines[0]
    assert f"data root '{root}'" in lines[0], lines[0]
    assert 'Iter(train)' not in proc.stdout + proc.stderr
