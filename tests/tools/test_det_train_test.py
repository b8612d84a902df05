"""tools/train.py and tools/test.py on the tiny Mask R-CNN config: two training iterations,
then COCO box/mask AP from tools/test.py equal pycocotools' COCOeval run directly on the
predictions mmdet's CocoMetric saved (outfile_prefix), and --show-dir draws images."""
import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tests.tools_helpers import FASHION_MNIST_SUBSET, REPO_ROOT, run_tool

CONFIG = 'configs/mask-rcnn_beit/mask-rcnn_beit-tiny-p4_sfp_1xb2-2it_fashion-mnist-scenes-32x32.py'
STATS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')

def data_options(root: str) -> list:
    ann = f'{root}/annotations/instances_val.json'
    return [f'{k}.dataset.data_root={root}/'
            for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')] + \
        [f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']


def make_scenes(out: Path) -> None:
    """The converter's own functions, in-process (saves one interpreter start)."""
    path = REPO_ROOT / 'tools' / 'dataset_converters' / 'fashion_mnist_scenes_coco.py'
    spec = importlib.util.spec_from_file_location('fashion_mnist_scenes_coco', path)
    conv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv)
    (out / 'annotations').mkdir(parents=True)
    for split, num, seed in (('train', 8, 0), ('val', 4, 1)):
        coco = conv.convert_split(str(out), split, num, str(FASHION_MNIST_SUBSET), seed,
                                  (32, 32), (1, 3), (12, 20))
        (out / 'annotations' / f'instances_{split}.json').write_text(json.dumps(coco))


def cocoeval_stats(gt_file: str, det_file: str, iou_type: str) -> list:
    """COCOeval as mmdet's CocoMetric configures it (maxDets 100/300/1000)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_file)
        ev = COCOeval(gt, gt.loadRes(det_file), iou_type)
        ev.params.maxDets = [100, 300, 1000]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats[:6])


def test_train_two_iters_then_test_ap_matches_cocoeval(tmp_path):
    data = tmp_path / 'scenes'
    make_scenes(data)
    work = tmp_path / 'work'
    # no validation while training: tools/test.py evaluates the checkpoint below
    run_tool('train.py', CONFIG, '--work-dir', work, '--cfg-options', *data_options(str(data)),
             'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None')
    ckpt = work / 'iter_2.pth'
    assert ckpt.is_file()

    prefix = tmp_path / 'preds'
    test_work = tmp_path / 'test'
    run_tool('test.py', CONFIG, ckpt, '--work-dir', test_work, '--show-dir', 'vis',
             '--cfg-options', *data_options(str(data)), f'test_evaluator.outfile_prefix={prefix}',
             'model.test_cfg.rcnn.score_thr=0.0')  # keep every detection: AP is not trivially 0
    metrics = json.loads((test_work / 'metrics.json').read_text())
    gt_file = str(data / 'annotations' / 'instances_val.json')
    for iou_type in ('bbox', 'segm'):
        det_file = f'{prefix}.{iou_type}.json'
        assert len(json.load(open(det_file))) > 0
        direct = cocoeval_stats(gt_file, det_file, iou_type)
        reported = [metrics[f'coco/{iou_type}_{s}'] for s in STATS]
        # CocoMetric rounds to 3 decimals
        assert reported == pytest.approx(direct, abs=5.1e-4), iou_type
    drawn = list(test_work.rglob('vis/*.png'))
    assert len(drawn) == 4
