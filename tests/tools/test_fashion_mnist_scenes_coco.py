"""Fashion-MNIST scenes in COCO format: pycocotools reads them, masks/boxes/areas agree, and
ground truth scored against itself gives AP 1.0 for boxes and masks."""
import contextlib
import io
import json
import os.path as osp

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from beitlab.datasets.scenes import compose_scene, load_fashion_mnist
from tests.tools_helpers import FASHION_MNIST_SUBSET, run_tool


@pytest.fixture(scope='module')
def coco_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp('scenes_coco')
    run_tool('dataset_converters/fashion_mnist_scenes_coco.py', '--src', FASHION_MNIST_SUBSET,
             '--out', out, '--num-train', 3,
             '--num-val', 6, '--canvas', 48, 48, '--item-size', 14, 30)
    return out


def test_scene_masks_are_visible_pixels_and_disjoint():
    images, labels = load_fashion_mnist(str(FASHION_MNIST_SUBSET), split='val')
    scene = compose_scene(images, labels, np.random.default_rng(3), canvas_size=(48, 48),
                          num_items=(4, 4), item_size=(20, 30))
    assert len(scene.instances) >= 2
    masks = np.stack([i.mask for i in scene.instances])
    assert masks.sum(0).max() == 1  # an occluded item loses the pixels it no longer shows
    # every mask pixel is a bright item pixel; the background outside all masks is black
    assert (scene.image[masks.any(0)] > 30).all() and (scene.image[~masks.any(0)] == 0).all()
    seg = scene.semantic_map()
    for inst in scene.instances:
        assert (seg[inst.mask] == inst.label + 1).all()


def test_coco_json_loads_and_agrees_with_masks(coco_dir):
    coco = COCO(str(coco_dir / 'annotations' / 'instances_val.json'))
    assert len(coco.getImgIds()) == 6 and len(coco.getCatIds()) == 10
    for ann in coco.loadAnns(coco.getAnnIds()):
        m = coco.annToMask(ann).astype(bool)
        ys, xs = np.nonzero(m)
        assert ann['area'] == m.sum() == mask_utils.area(ann['segmentation'])
        assert ann['bbox'] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        img = coco.loadImgs(ann['image_id'])[0]
        assert osp.isfile(coco_dir / 'val' / img['file_name'])


def test_ground_truth_scored_against_itself_is_ap_1(coco_dir):
    gt_path = str(coco_dir / 'annotations' / 'instances_val.json')
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(gt_path)
        anns = json.load(open(gt_path))['annotations']
        for iou_type in ('bbox', 'segm'):
            dets = [dict(image_id=a['image_id'], category_id=a['category_id'], score=1.0,
                         **({'bbox': a['bbox']} if iou_type == 'bbox' else
                            {'segmentation': a['segmentation']})) for a in anns]
            ev = COCOeval(coco, coco.loadRes(dets), iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            assert ev.stats[0] == pytest.approx(1.0), iou_type
            assert ev.stats[1] == pytest.approx(1.0) and ev.stats[2] == pytest.approx(1.0)
