"""Fine-tuning transforms: shapes, probabilities, determinism under a seed, grayscale input."""
import random

import numpy as np
import pytest

from beitlab.datasets.transforms.rand_augment import RAND_AUGMENT_OPS, RandAugment
from beitlab.datasets.transforms.random_erasing import RandomErasing
from beitlab.datasets.transforms.random_resized_crop import RandomResizedCrop
from beitlab.datasets.transforms.resize_edge import ResizeEdge


def img(h: int = 40, w: int = 60, c: int = 3) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, c), dtype=np.uint8)


def test_random_resized_crop_box_inside_and_output_size():
    np.random.seed(0)
    t = RandomResizedCrop(size=(24, 32), scale=(0.2, 1.0))
    for _ in range(20):
        out = t(dict(img=img()))
        x1, y1, x2, y2 = out['crop_bbox']
        assert 0 <= x1 < x2 <= 60 and 0 <= y1 < y2 <= 40
        assert out['img'].shape == (24, 32, 3)


def test_resize_edge_short_and_long():
    assert ResizeEdge(20)(dict(img=img()))['img'].shape == (20, 30, 3)
    assert ResizeEdge(30, edge='long')(dict(img=img()))['img'].shape == (20, 30, 3)
    with pytest.raises(ValueError, match='edge'):
        ResizeEdge(20, edge='middle')


def test_random_erasing_probability_and_box():
    np.random.seed(0)
    src = np.zeros((32, 32, 3), np.uint8)
    t = RandomErasing(prob=0.25, mode='const', mean=(200, 200, 200))
    changed = [bool((t(dict(img=src.copy()))['img'] != 0).any()) for _ in range(400)]
    assert 0.18 < np.mean(changed) < 0.32
    out = RandomErasing(prob=1.0, mode='const', mean=(200, 200, 200))(dict(img=src.copy()))['img']
    ys, xs = np.nonzero(out[..., 0])
    box = out[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    assert (box == 200).all()  # one filled rectangle
    assert 0.02 * 1024 * 0.5 <= box.shape[0] * box.shape[1] <= 1024 / 3 * 1.5


@pytest.mark.parametrize('channels', [3, 1])
def test_rand_augment_every_op_runs_and_seed_repeats(channels):
    x = img(32, 32, channels)
    for name in RAND_AUGMENT_OPS:
        t = RandAugment(magnitude=9, num_ops=1, op_prob=1.0, ops=[name])
        out = t(dict(img=x.copy()))['img']
        assert out.shape == x.shape and out.dtype == np.uint8, name
    t = RandAugment()
    random.seed(3)
    a = t(dict(img=x.copy()))['img']
    random.seed(3)
    b = t(dict(img=x.copy()))['img']
    np.testing.assert_array_equal(a, b)
    with pytest.raises(KeyError, match='Nope'):
        RandAugment(ops=['Nope'])
