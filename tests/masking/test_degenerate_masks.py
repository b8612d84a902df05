"""Mask settings that mask no patch or every patch are errors when the generator (or the
algorithm, or the pipeline transform) is built, not a training run with a loss of 0."""
import random

import numpy as np
import pytest
import torch

from beitlab.masking.blockwise import BlockwiseMaskGenerator
from beitlab.masking.generate_mask import GenerateMask
from beitlab.masking.random import RandomMaskGenerator
from beitlab.masking.simmim import SimMIMMaskGenerator
from beitlab.registry import MODELS
from beitlab.utils import register_all_modules

NOTHING = 'masks no patch'
EVERYTHING = 'masks every patch'


@pytest.mark.parametrize('kwargs, message', [
    (dict(input_size=14, num_masking_patches=0), NOTHING),
    (dict(input_size=14, num_masking_patches=196), EVERYTHING),
    (dict(input_size=(2, 8), num_masking_patches=400), EVERYTHING),
    # no block narrower and shorter than a 1 x 8 grid exists: every draw was empty
    (dict(input_size=(1, 8), num_masking_patches=4, min_num_patches=2), 'no block fits'),
    (dict(input_size=(1, 8), num_masking_patches=4, min_num_patches=2, exact=True),
     'no block fits'),
    # square blocks (aspect 1) of 10..16 patches are 3 or 4 patches tall: none is shorter
    # than a grid 3 patches high
    (dict(input_size=(3, 14), num_masking_patches=10, min_num_patches=16, min_aspect=1.0),
     'no block fits'),
])
def test_blockwise_degenerate_settings(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        BlockwiseMaskGenerator(**kwargs)
    assert 'BlockwiseMaskGenerator' in str(info.value)


def test_blockwise_check_keeps_the_global_random_state() -> None:
    random.seed(5)
    expected = random.random()
    random.seed(5)
    BlockwiseMaskGenerator(input_size=8, num_masking_patches=24, min_num_patches=4)
    assert random.random() == expected


@pytest.mark.parametrize('kwargs, message', [
    (dict(input_size=14, mask_ratio=0.0), r'mask_ratio=0\.0 must lie in \(0, 1\)'),
    (dict(input_size=14, mask_ratio=1.0), r'mask_ratio=1\.0 must lie in \(0, 1\)'),
    (dict(input_size=4, mask_ratio=0.02), 'mask_ratio=0.02 .*' + NOTHING),  # rounds to 0 of 16
    (dict(input_size=4, mask_ratio=0.98), 'mask_ratio=0.98 .*' + EVERYTHING),  # 16 of 16
    (dict(input_size=14, num_masking_patches=0), NOTHING),
    (dict(input_size=14, num_masking_patches=196), EVERYTHING),
])
def test_random_degenerate_settings(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        RandomMaskGenerator(**kwargs)


@pytest.mark.parametrize('ratio, message', [
    (0.0, r'mask_ratio=0\.0 must lie in \(0, 1\)'),
    (1.0, r'mask_ratio=1\.0 must lie in \(0, 1\)'),
    (0.8, EVERYTHING),   # ceil(0.8 * 4 squares) = 4 of the 2 x 2 squares of 16 px
])
def test_simmim_degenerate_settings(ratio, message) -> None:
    with pytest.raises(ValueError, match=message):
        SimMIMMaskGenerator(img_size=32, mask_patch_size=16, model_patch_size=4,
                            mask_ratio=ratio)
    SimMIMMaskGenerator(img_size=32, mask_patch_size=16, model_patch_size=4, mask_ratio=0.6)


def test_generate_mask_refuses_a_custom_generator_that_masks_nothing() -> None:
    class NoMask:
        def __repr__(self) -> str:
            return 'NoMask()'

        def __call__(self) -> np.ndarray:
            return np.zeros((4, 4), dtype=bool)

    class AllMask(NoMask):
        def __repr__(self) -> str:
            return 'AllMask()'

        def __call__(self) -> np.ndarray:
            return np.ones((4, 4), dtype=bool)

    with pytest.raises(ValueError, match=r'NoMask\(\): none of 4 trial masks masks a patch'):
        GenerateMask(NoMask())
    with pytest.raises(ValueError, match=r'AllMask\(\): all 4 trial masks mask every patch'):
        GenerateMask(AllMask())


def test_generate_mask_probe_keeps_random_states() -> None:
    register_all_modules()
    np.random.seed(1)
    random.seed(1)
    torch.manual_seed(1)
    expected = np.random.rand(), random.random(), torch.rand(1)
    np.random.seed(1)
    random.seed(1)
    torch.manual_seed(1)
    GenerateMask(dict(type='RandomMaskGenerator', input_size=4, mask_ratio=0.5))
    assert (np.random.rand(), random.random(), torch.rand(1)) == expected
    with pytest.raises(ValueError, match=NOTHING):
        GenerateMask(dict(type='RandomMaskGenerator', input_size=4, mask_ratio=0.02))


@pytest.mark.parametrize('ratio, message', [
    (0.0, r'mask_ratio=0\.0 must lie in \(0, 1\)'),
    # 2 x 2 patches: int(4 * (1 - 0.8)) = 0 visible, the encoder would see only CLS
    (0.8, 'keeps 0 visible.*' + EVERYTHING),
])
def test_mae_degenerate_ratio(ratio, message) -> None:
    register_all_modules()
    arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    cfg = dict(type='MAE', mask_ratio=ratio,
               backbone=dict(type='BEiTViT', arch=arch, img_size=8, patch_size=4, out_type='raw'),
               head=dict(type='MAEDecoder', grid=2, patch_size=4, embed_dims=32,
                         decoder_embed_dims=16, decoder_depth=1, decoder_num_heads=2))
    with pytest.raises(ValueError, match=message):
        MODELS.build(cfg)
    MODELS.build(dict(cfg, mask_ratio=0.5))
