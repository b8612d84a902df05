"""Blockwise masking against an independent re-implementation of official BEiT's rules."""
import math
import random

import numpy as np
import pytest

from beitlab.masking.blockwise import BlockwiseMaskGenerator
from beitlab.masking.random import RandomMaskGenerator


def reference_official_mask(rng: random.Random, height: int = 14, width: int = 14,
                            num_masking: int = 75, min_patches: int = 16,
                            min_aspect: float = 0.3) -> np.ndarray:
    """Official BEiT MaskingGenerator (microsoft/unilm beit/masking_generator.py), rewritten
    element by element with the same random calls in the same order."""
    lo, hi = math.log(min_aspect), math.log(1 / min_aspect)
    mask = [[0] * width for _ in range(height)]
    count = 0
    while count < num_masking:
        budget = num_masking - count  # max_num_patches = num_masking_patches
        added = 0
        for _attempt in range(10):
            area = rng.uniform(min_patches, budget)
            aspect = math.exp(rng.uniform(lo, hi))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if w < width and h < height:
                top = rng.randint(0, height - h)
                left = rng.randint(0, width - w)
                already = sum(mask[i][j] for i in range(top, top + h)
                              for j in range(left, left + w))
                if 0 < h * w - already <= budget:
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if mask[i][j] == 0:
                                mask[i][j] = 1
                                added += 1
            if added > 0:
                break
        if added == 0:
            break
        count += added
    return np.array(mask, dtype=bool)


def test_matches_official_rules_draw_for_draw():
    gen = BlockwiseMaskGenerator(input_size=14, num_masking_patches=75, min_num_patches=16)
    for seed in range(300):
        ours = gen(random.Random(seed))
        ref = reference_official_mask(random.Random(seed))
        assert ours.dtype == np.bool_ and ours.shape == (14, 14)
        np.testing.assert_array_equal(ours, ref, err_msg=f'seed {seed}')


def test_never_more_than_requested_and_exact_option():
    inexact = BlockwiseMaskGenerator()
    exact = BlockwiseMaskGenerator(exact=True)
    counts = [int(inexact(random.Random(s)).sum()) for s in range(1000)]
    assert max(counts) <= 75
    assert min(counts) < 75  # official BEiT does undershoot sometimes
    assert sum(c == 75 for c in counts) > 500
    for s in range(1000):
        assert int(exact(random.Random(s)).sum()) == 75
    # exact only adds patches on top of the official draw
    for s in range(100):
        a, b = inexact(random.Random(s)), exact(random.Random(s))
        assert not (a & ~b).any()


def test_blocks_respect_size_and_aspect_bounds():
    """Record every accepted block (the bounding box of the patches it adds) and check
    the rules: from an empty grid a block is an h x w rectangle with h, w < 14, area at
    least 12 (the smallest rounding of an area >= 16 within the aspect bounds) and an
    aspect ratio inside [0.3, 1/0.3] up to rounding; log-aspects are symmetric."""
    gen = BlockwiseMaskGenerator()
    first_blocks = []
    original = gen._mask_block

    def recording(mask, max_mask_patches, rng):
        before = mask.copy()
        delta = original(mask, max_mask_patches, rng)
        new = mask & ~before
        assert int(new.sum()) == delta and delta <= max_mask_patches
        if delta and not before.any():
            rows, cols = np.nonzero(new)
            h, w = np.ptp(rows) + 1, np.ptp(cols) + 1
            assert h * w == delta  # a full rectangle
            first_blocks.append((h, w))
        return delta

    gen._mask_block = recording
    for s in range(2000):
        gen(random.Random(s))
    hw = np.array(first_blocks)
    assert len(hw) == 2000
    h, w = hw[:, 0], hw[:, 1]
    assert (h < 14).all() and (w < 14).all()
    assert (h * w >= 12).all() and (h * w <= 75 + 2 * 9 + 1).all()
    # rounding moves each side by at most 0.5 from sqrt(area * aspect)
    assert ((h - 0.5) / (w + 0.5) <= 1 / 0.3 + 1e-9).all()
    assert ((h + 0.5) / (w - 0.5) >= 0.3 - 1e-9).all()
    log_aspect = np.log(h / w)
    assert abs(log_aspect.mean()) < 0.05
    assert abs((h > w).mean() - (w > h).mean()) < 0.05
    # log-uniform aspects: both elongated halves are well populated
    assert (h / w > 2).mean() > 0.15 and (w / h > 2).mean() > 0.15


def test_default_rng_is_seeded_by_random_module():
    gen = BlockwiseMaskGenerator()
    random.seed(3)
    a = gen()
    random.seed(3)
    np.testing.assert_array_equal(a, gen())


def test_random_mask_generator_counts_and_uniformity():
    gen = RandomMaskGenerator(input_size=(4, 6), mask_ratio=0.5)
    assert gen.num_masking_patches == 12
    rng = np.random.default_rng(0)
    masks = np.stack([gen(rng) for _ in range(3000)])
    assert masks.shape == (3000, 4, 6) and masks.dtype == np.bool_
    assert (masks.reshape(3000, -1).sum(1) == 12).all()
    np.testing.assert_allclose(masks.mean(0), 0.5, atol=0.05)
    assert RandomMaskGenerator(input_size=14, num_masking_patches=75)().sum() == 75
    with pytest.raises(ValueError, match='exactly one'):
        RandomMaskGenerator(input_size=14, mask_ratio=0.4, num_masking_patches=75)


def test_registered():
    from beitlab.registry import MASK_GENERATORS
    from beitlab.utils import register_all_modules
    register_all_modules()
    gen = MASK_GENERATORS.build(dict(type='BlockwiseMaskGenerator', input_size=8,
                                     num_masking_patches=20, min_num_patches=4, exact=True))
    assert gen.num_patches == 64 and gen.input_size == (8, 8)
    assert gen().sum() == 20
