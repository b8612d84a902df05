"""A COCO file without annotations: an error for training and for validation during
training (before the first iteration), a warning and no metrics for testing (instead of
every AP at -1 without a word); a set without images is an error when it is built."""
import copy
import importlib.util
import json
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

import beitlab.downstream.mmdet_adapter  # noqa: F401  (what custom_imports does)
from beitlab.downstream.coco_checks import CheckedCocoDataset, CheckedCocoMetric

from ..tools_helpers import FASHION_MNIST_SUBSET, REPO_ROOT, run_tool

CONFIG = 'configs/mask-rcnn_beit/mask-rcnn_beit-tiny-p4_sfp_1xb2-2it_fashion-mnist-scenes-32x32.py'


@pytest.fixture(scope='module')
def coco(tmp_path_factory) -> Path:
    """8 train / 4 val scenes; ``empty_<split>.json`` keep the images without annotations,
    ``noimg_<split>.json`` hold neither."""
    out = tmp_path_factory.mktemp('coco')
    path = REPO_ROOT / 'tools' / 'dataset_converters' / 'fashion_mnist_scenes_coco.py'
    spec = importlib.util.spec_from_file_location('fashion_mnist_scenes_coco', path)
    conv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv)
    (out / 'annotations').mkdir()
    for split, num, seed in (('train', 8, 0), ('val', 4, 1)):
        data = conv.convert_split(str(out), split, num, str(FASHION_MNIST_SUBSET), seed,
                                  (32, 32), (1, 3), (12, 20))
        (out / 'annotations' / f'instances_{split}.json').write_text(json.dumps(data))
        data['annotations'] = []
        (out / 'annotations' / f'empty_{split}.json').write_text(json.dumps(data))
        data['images'] = []
        (out / 'annotations' / f'noimg_{split}.json').write_text(json.dumps(data))
    return out


def build_dataset(root: Path, ann: str, split: str, test_mode: bool):
    from mmdet.registry import DATASETS
    cfg = copy.deepcopy(Config.fromfile(str(REPO_ROOT / CONFIG)).train_dataloader.dataset)
    cfg.update(type='CheckedCocoDataset', data_root=f'{root}/', ann_file=f'annotations/{ann}',
               data_prefix=dict(img=f'{split}/'), test_mode=test_mode)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.build(cfg)


def test_training_set_without_annotations_is_named(coco) -> None:
    with pytest.raises(ValueError, match=r"COCO training set has no annotations: 8 images and 0 "
                       rf"annotations \(ann_file '{coco}/annotations/empty_train\.json', data "
                       rf"root '{coco}/'\)"):
        build_dataset(coco, 'empty_train.json', 'train', test_mode=False)
    assert len(build_dataset(coco, 'instances_train.json', 'train', test_mode=False)) == 8
    # an evaluation set may hold images without objects: that is the metric's business
    assert len(build_dataset(coco, 'empty_val.json', 'val', test_mode=True)) == 4


@pytest.mark.parametrize('test_mode', [False, True])
def test_set_without_images_is_named(coco, test_mode) -> None:
    with pytest.raises(ValueError, match=r'COCO .*set is empty: the annotation file lists no '
                       rf"images \(ann_file '{coco}/annotations/noimg_val\.json'"):
        build_dataset(coco, 'noimg_val.json', 'val', test_mode=test_mode)


def test_metric_error_or_warning_without_annotations(coco, monkeypatch) -> None:
    from beitlab.downstream import coco_checks
    ann = str(coco / 'annotations' / 'empty_val.json')
    with pytest.raises(ValueError, match=rf"val_evaluator: COCO annotation file '{ann}' holds 4 "
                       'images and no annotations, so every COCO AP would be -1'):
        CheckedCocoMetric(ann_file=ann, metric=['bbox', 'segm'], empty_gt='error')
    seen = []
    monkeypatch.setattr(coco_checks, 'print_log', lambda msg, **kw: seen.append((msg, kw)))
    metric = CheckedCocoMetric(ann_file=ann, metric=['bbox', 'segm'], empty_gt='warn')
    assert metric.compute_metrics([]) == {}
    assert len(seen) == 2 and all(kw['level'] == 30 and 'test_evaluator' in msg
                                  and 'no COCO metrics are reported' in msg
                                  for msg, kw in seen), seen
    good = CheckedCocoMetric(ann_file=str(coco / 'annotations' / 'instances_val.json'))
    assert good._coco_api.anns


def test_prepare_config_uses_the_checked_types(tmp_path) -> None:
    from beitlab.utils import prepare_config
    cfg = Config.fromfile(str(REPO_ROOT / CONFIG))
    cfg.work_dir = str(tmp_path / 'w')
    cfg.launcher = 'none'
    cfg.test_evaluator = [cfg.test_evaluator, dict(type='DumpResults', out_file_path='x.pkl')]
    prepare_config(cfg)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.type == 'CheckedCocoDataset', key
    assert cfg.val_evaluator.type == 'CheckedCocoMetric' and cfg.val_evaluator.empty_gt == 'error'
    assert cfg.test_evaluator[0].type == 'CheckedCocoMetric'
    assert cfg.test_evaluator[0].empty_gt == 'warn' and cfg.test_evaluator[1].type == 'DumpResults'
    from mmdet.registry import DATASETS, METRICS
    assert DATASETS.get('CheckedCocoDataset') is CheckedCocoDataset
    assert METRICS.get('CheckedCocoMetric') is CheckedCocoMetric
    assert METRICS.get('CocoMetric').__module__.startswith('mmdet.')  # not shadowed


def options(root: Path, val_ann: str) -> list:
    return [f'{k}.dataset.data_root={root}/'
            for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')] + [
        f'val_dataloader.dataset.ann_file=annotations/{val_ann}',
        f'test_dataloader.dataset.ann_file=annotations/{val_ann}',
        f'val_evaluator.ann_file={root}/annotations/{val_ann}',
        f'test_evaluator.ann_file={root}/annotations/{val_ann}']


def test_tools_train_error_and_test_warning(coco, tmp_path) -> None:
    proc = run_tool('train.py', CONFIG, '--work-dir', tmp_path / 'bad', '--cfg-options',
                    *options(coco, 'empty_val.json'), check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith('train.py: error:')]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-3000:]
    assert f"val_evaluator: COCO annotation file '{coco}/annotations/empty_val.json' holds 4 " \
        'images and no annotations' in lines[0], lines[0]
    assert 'Iter(train)' not in proc.stdout + proc.stderr  # before any training time is spent

    work = tmp_path / 'work'
    run_tool('train.py', CONFIG, '--work-dir', work, '--cfg-options',
             *options(coco, 'instances_val.json'), 'val_cfg=None', 'val_dataloader=None',
             'val_evaluator=None')
    test_work = tmp_path / 'test'
    proc = run_tool('test.py', CONFIG, work / 'iter_2.pth', '--work-dir', test_work,
                    '--cfg-options', *options(coco, 'empty_val.json'))
    log = proc.stdout + proc.stderr
    assert 'WARNING - test_evaluator: COCO annotation file' in log and \
        'no COCO metrics are reported' in log, log[-3000:]
    metrics = json.loads((test_work / 'metrics.json').read_text())
    assert metrics == {}, metrics  # no AP of -1
