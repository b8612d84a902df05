"""FashionMNISTDataset: the idx files in memory give the pipeline exactly what the PNG folder
of tools/dataset_converters/fashion_mnist.py gives after LoadImageChecked."""
import numpy as np
import pytest

from beitlab.datasets import fashion_mnist_files as fm
from beitlab.registry import DATASETS, TRANSFORMS
from beitlab.utils import register_all_modules
from tests.tools_helpers import FASHION_MNIST_SUBSET, run_tool

register_all_modules()


@pytest.mark.parametrize('split, png_split', [('train', 'train'), ('test', 'val')])
def test_items_equal_the_decoded_pngs(tmp_path, split: str, png_split: str) -> None:
    run_tool('dataset_converters/fashion_mnist.py', '--src', str(FASHION_MNIST_SUBSET),
             '--out', str(tmp_path / 'png'), '--limit', '12')
    arrays = DATASETS.build(dict(type='FashionMNISTDataset', data_root=str(FASHION_MNIST_SUBSET),
                                 split=split, num_samples=12))
    folder = DATASETS.build(dict(type='ImageNetStyleDataset', data_root=str(tmp_path / 'png'),
                                 ann_file=f'meta/{png_split}.txt',
                                 data_prefix=dict(img_path=png_split)))
    load = TRANSFORMS.build(dict(type='LoadImageChecked'))
    assert len(arrays) == len(folder) == 12
    assert arrays.metainfo['classes'] == fm.FASHION_MNIST_CLASSES
    for i in range(12):
        ours, png = arrays[i], load(folder.get_data_info(i))
        np.testing.assert_array_equal(ours['img'], png['img'])
        assert ours['gt_label'] == png['gt_label'] and ours['img_shape'] == png['img_shape'] == (28, 28)
    first = arrays.get_data_info(0)['img']
    first[:] = 0  # a transform that works in place must not change the dataset
    assert arrays.get_data_info(0)['img'].any()


def test_default_root_and_errors(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(fm.FASHION_MNIST_ROOT_ENV, str(FASHION_MNIST_SUBSET))
    ds = DATASETS.build(dict(type='FashionMNISTDataset'))
    assert len(ds) == 500 and ds.data_root == str(FASHION_MNIST_SUBSET)
    with pytest.raises(ValueError, match='num_samples=0'):
        DATASETS.build(dict(type='FashionMNISTDataset', num_samples=0))
    with pytest.raises(FileNotFoundError, match='train-images-idx3-ubyte'):
        DATASETS.build(dict(type='FashionMNISTDataset', data_root=str(tmp_path)))


def test_the_mim_pipeline_gives_the_same_samples_as_on_the_png_folder(tmp_path) -> None:
    """configs/_base_/datasets/fashion-mnist_mim.py on the idx files: same views and masks as
    the same pipeline on the converter's PNG folder, under the same seeds (LoadImageChecked
    passes in-memory items through and draws nothing)."""
    import random

    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from tests.tools_helpers import REPO_ROOT
    run_tool('dataset_converters/fashion_mnist.py', '--src', str(FASHION_MNIST_SUBSET),
             '--out', str(tmp_path / 'png'), '--limit', '6')
    cfg = Config.fromfile(REPO_ROOT / 'configs/_base_/datasets/fashion-mnist_mim.py')
    pipeline = cfg.train_pipeline
    assert cfg.train_dataloader.dataset.type == 'FashionMNISTDataset'
    with DefaultScope.overwrite_default_scope('beitlab'):
        arrays = DATASETS.build(dict(type='FashionMNISTDataset', data_root=str(FASHION_MNIST_SUBSET),
                                     num_samples=6, pipeline=pipeline))
        folder = DATASETS.build(dict(type='ImageNetStyleDataset', data_root=str(tmp_path / 'png'),
                                     ann_file='meta/train.txt', data_prefix=dict(img_path='train'),
                                     pipeline=pipeline))
        for i in range(6):
            items = []
            for ds in (arrays, folder):
                random.seed(i), np.random.seed(i), torch.manual_seed(i)
                items.append(ds[i])
            (ours, png) = items
            for a, b in zip(ours['inputs'], png['inputs']):
                assert torch.equal(a, b), i
            assert torch.equal(ours['data_samples'].mask, png['data_samples'].mask)


def test_image_folder_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"ann_file='meta/val.txt' does not apply: choose the "
                                         r"images with split='train' or 'test'"):
        DATASETS.build(dict(type='FashionMNISTDataset', data_root=str(FASHION_MNIST_SUBSET),
                            ann_file='meta/val.txt'))
    with pytest.raises(ValueError, match='data_prefix'):
        DATASETS.build(dict(type='FashionMNISTDataset', data_root=str(FASHION_MNIST_SUBSET),
                            data_prefix=dict(img_path='val')))
    load = TRANSFORMS.build(dict(type='LoadImageChecked'))
    img = np.zeros((4, 4, 3), np.uint8)
    assert load(dict(img=img))['img'] is img          # in memory: passed through
    with pytest.raises(KeyError, match='img_path'):
        load(dict(img=img.tolist()))                  # not an image array: a file is needed
