"""Segmentation labels outside the classes name the label file and the values, in training
and in testing (instead of ``Target 50 is out of bounds`` in the loss, or pixels silently
left out of the metrics); an empty scenes set is an error when it is built."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from mmengine.registry import DefaultScope
from PIL import Image

import beitlab.downstream.mmseg_adapter  # noqa: F401  (what custom_imports does)
from beitlab.datasets.seg_checks import EmptyDatasetError, check_seg_labels
from tests.tools_helpers import FASHION_MNIST_SUBSET, REPO_ROOT, run_tool

TINY = REPO_ROOT / 'configs' / 'upernet_beit' / \
    'upernet_beit-tiny_1xb2-2it_fashion-mnist-scenes-32x32.py'
LOAD = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]


@pytest.fixture(scope='module')
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('scenes')
    run_tool('dataset_converters/fashion_mnist_scenes_seg.py', '--src', FASHION_MNIST_SUBSET,
             '--out', root, '--size', '32', '--min-item-size', '12', '--max-item-size', '20',
             '--num-train', '4', '--num-val', '4')
    return root


@pytest.fixture()
def bad_scenes(scenes: Path, tmp_path) -> Path:
    """The scenes with label 50 in val/00001.png and label 11 in train/00002.png (one
    class past the last); 255 (ignore) is allowed."""
    root = tmp_path / 'bad'
    shutil.copytree(scenes, root)
    for split, name, value in (('val', '00001.png', 50), ('train', '00002.png', 11)):
        path = root / 'ann_dir' / split / name
        label = np.array(Image.open(path))
        label[0, :3] = value
        label[1, 0] = 255
        Image.fromarray(label).save(path)
    return root


def build(root: Path, split: str, pipeline, **kwargs):
    from mmseg.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmseg'):
        return DATASETS.build(dict(
            type='FashionMNISTScenesDataset', data_root=str(root),
            data_prefix=dict(img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'),
            pipeline=pipeline, **kwargs))


@pytest.mark.parametrize('split, test_mode, packed, index, value', [
    ('train', False, True, 2, 11), ('val', True, True, 1, 50), ('val', True, False, 1, 50)])
def test_out_of_range_label_names_file_and_values(bad_scenes, split, test_mode, packed, index,
                                                  value) -> None:
    pipeline = LOAD + ([dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]
                       if packed else [])
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = build(bad_scenes, split, pipeline, test_mode=test_mode)
        for i in range(len(dataset)):
            if i != index:
                dataset[i]  # the other maps are fine (255 included)
        with pytest.raises(ValueError) as info:
            dataset[index]
    path = bad_scenes / 'ann_dir' / split / f'0000{index}.png'
    assert str(info.value).startswith(f"label map '{path}' holds values [{value}] (3 pixels) "
                                      'outside 0..10: FashionMNISTScenesDataset has 11 classes '
                                      'and ignore index 255')


def test_check_seg_labels_lists_the_values() -> None:
    labels = np.array([[0, 1, 255, 12], [-1, 300, 12, 10]])
    with pytest.raises(ValueError, match=r"'x\.png' holds values \[-1, 12, 300\] \(4 pixels\)"):
        check_seg_labels(labels, 11, 255, 'x.png')
    check_seg_labels(np.array([[0, 10, 255]]), 11, 255, 'x.png')


def test_missing_or_empty_image_folder(scenes, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"image folder '.*img_dir/test' does not exist "
                       r"\(data root '.*'\); expected images \*\.png and their label maps"):
        build(scenes, 'test', LOAD)
    empty = tmp_path / 'empty'
    (empty / 'img_dir' / 'val').mkdir(parents=True)
    with pytest.raises(EmptyDatasetError) as info:
        build(empty, 'val', LOAD, test_mode=True)
    text = str(info.value)
    assert f"FashionMNISTScenesDataset is empty: no images *.png under '{empty}/img_dir/val' " \
        f"(data root '{empty}', ann_file '', label maps '{empty}/ann_dir/val')" in text
    assert 'fashion_mnist_scenes_seg.py --out' in text


def data_root_options(root: Path) -> list:
    return [f'{k}_dataloader.dataset.data_root={root}' for k in ('train', 'val', 'test')]


def test_train_and_test_tools_name_the_label_file(scenes, bad_scenes, tmp_path) -> None:
    proc = run_tool('train.py', TINY, '--work-dir', tmp_path / 'bad', '--cfg-options',
                    *data_root_options(bad_scenes), check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith('train.py: error:')]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-3000:]
    assert f"label map '{bad_scenes}/ann_dir/train/00002.png' holds values [11]" in lines[0]
    assert 'out of bounds' not in proc.stderr

    work = tmp_path / 'good'
    run_tool('train.py', TINY, '--work-dir', work, '--cfg-options', *data_root_options(scenes),
             'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None')
    proc = run_tool('test.py', TINY, work / 'iter_2.pth', '--work-dir', tmp_path / 'test',
                    '--cfg-options', *data_root_options(bad_scenes), check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith('test.py: error:')]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-3000:]
    assert f"label map '{bad_scenes}/ann_dir/val/00001.png' holds values [50]" in lines[0]
    assert not (tmp_path / 'test' / 'metrics.json').exists()
