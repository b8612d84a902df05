"""The two-view BEiT pipeline: one crop box, two resamplings, mask, packing, normalisation."""
import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate, pseudo_collate
from PIL import Image

from beitlab.datasets.transforms.color_jitter import ColorJitter
from beitlab.datasets.transforms.two_view import PackTwoViewInputs, TwoViewRandomResizedCrop
from beitlab.masking.generate_mask import GenerateMask
from beitlab.models.data_preprocessors.two_view_preprocessor import TwoViewDataPreprocessor
from beitlab.utils import register_all_modules

register_all_modules()


def photo(h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_one_box_two_resamplings_match_pillow():
    img = photo()
    t = TwoViewRandomResizedCrop(size=32, second_size=16)
    np.random.seed(0)
    for _ in range(20):
        out = t(dict(img=img.copy()))
        x1, y1, x2, y2 = out['crop_bbox']
        assert 0 <= x1 < x2 <= 80 and 0 <= y1 < y2 <= 60
        ratio = (x2 - x1) / (y2 - y1)
        area = (x2 - x1) * (y2 - y1) / (60 * 80)
        assert 0.08 - 0.02 <= area <= 1 and 3 / 4 - 0.1 <= ratio <= 4 / 3 + 0.1
        crop = Image.fromarray(img[y1:y2, x1:x2])
        np.testing.assert_array_equal(out['img'], np.asarray(crop.resize((32, 32), Image.BICUBIC)))
        np.testing.assert_array_equal(out['img_tok'],
                                      np.asarray(crop.resize((16, 16), Image.LANCZOS)))
        assert out['img_shape'] == (32, 32)


def test_crop_params_follow_torchvision_rules():
    t = TwoViewRandomResizedCrop(size=8, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    np.random.seed(1)
    areas, log_ratios = [], []
    for _ in range(3000):
        top, left, h, w = t.get_params(200, 200)
        assert 0 <= top <= 200 - h and 0 <= left <= 200 - w
        areas.append(h * w / 200 ** 2)
        log_ratios.append(np.log(w / h))
    areas = np.array(areas)
    assert areas.min() >= 0.075 and areas.max() <= 1.0
    # area fraction uniform in [0.08, 1] before rejecting boxes that do not fit: the lower
    # part of the range is never rejected on a square image
    assert abs((areas < 0.3).mean() - (0.3 - 0.08) / 0.92) < 0.03
    assert abs(np.mean(log_ratios)) < 0.02       # log-uniform aspect ratio, symmetric
    # a very elongated image falls back to a centre crop clamped to the ratio range
    t.max_attempts = 0
    assert t.get_params(10, 100) == (0, 43, 10, 13)


def test_color_jitter():
    img = photo()
    np.testing.assert_array_equal(ColorJitter(0, 0, 0, 0)(dict(img=img.copy()))['img'], img)
    np.random.seed(0)
    out = ColorJitter(0.4, 0.4, 0.4, 0.0)(dict(img=img.copy()))['img']
    assert out.dtype == np.uint8 and out.shape == img.shape and not np.array_equal(out, img)
    # brightness alone scales pixel values by a factor in [0.6, 1.4]
    np.random.seed(3)
    bright = ColorJitter(0.4, 0, 0, 0)(dict(img=np.full((4, 4, 3), 100, np.uint8)))['img']
    assert 60 <= int(bright[0, 0, 0]) <= 140 and (bright == bright[0, 0, 0]).all()
    # a gray image has no saturation to change
    gray = np.repeat(photo()[..., :1], 3, axis=2)
    np.testing.assert_array_equal(ColorJitter(0, 0, 0.4, 0)(dict(img=gray.copy()))['img'], gray)
    # hue with negative factors must not overflow (mmcv adjust_hue does on numpy 2)
    np.random.seed(0)
    for _ in range(5):
        ColorJitter(0, 0, 0, 0.5)(dict(img=img.copy()))
    with pytest.raises(ValueError, match='hue=0.7'):
        ColorJitter(hue=0.7)


def test_generate_mask_pack_collate_and_preprocess():
    gen_cfg = dict(type='BlockwiseMaskGenerator', input_size=4, num_masking_patches=6,
                   min_num_patches=2, exact=True)
    crop = TwoViewRandomResizedCrop(size=16, second_size=8)
    mask_t = GenerateMask(mask_generator=gen_cfg)
    pack = PackTwoViewInputs()
    batch = []
    for seed in range(3):
        r = crop(dict(img=photo(seed=seed), img_path=f'{seed}.png'))
        r = mask_t(r)
        assert r['mask'].shape == (4, 4) and r['mask'].dtype == np.bool_ and r['mask'].sum() == 6
        batch.append(pack(r))
    packed = batch[0]
    assert packed['inputs'][0].shape == (3, 16, 16) and packed['inputs'][1].shape == (3, 8, 8)
    assert packed['data_samples'].mask.dtype == torch.bool
    assert packed['data_samples'].img_path == '0.png'
    with pytest.raises(KeyError, match='GenerateMask'):
        pack(dict(img=photo(), img_tok=photo()))

    pre = TwoViewDataPreprocessor(mean=(1., 2., 3.), std=(2., 4., 8.))
    for collate in (pseudo_collate, default_collate):
        data = pre(collate(batch))
        img_vit, img_tok = data['inputs']
        raw_vit = torch.stack([b['inputs'][0] for b in batch]).float()
        raw_tok = torch.stack([b['inputs'][1] for b in batch]).float()
        # BGR -> RGB, then per-channel statistics in RGB order
        expected_vit = (raw_vit.flip(1) - torch.tensor([1., 2., 3.]).view(1, 3, 1, 1)) / \
            torch.tensor([2., 4., 8.]).view(1, 3, 1, 1)
        torch.testing.assert_close(img_vit, expected_vit)
        torch.testing.assert_close(img_tok, raw_tok.flip(1) / 255.)
        assert len(data['data_samples']) == 3


def test_color_jitter_contrast_equals_mmcv_adjust_contrast():
    """ColorJitter's contrast skips mmcv's histogram (it only counts the pixels); the values
    must stay mmcv's, on colour, grey and constant images of any size."""
    import mmcv

    from beitlab.datasets.transforms.color_jitter import _adjust_contrast
    rng = np.random.default_rng(0)
    for i in range(300):
        h, w = (int(v) for v in rng.integers(1, 48, 2))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if i % 3 == 0:
            img = np.repeat(img[..., :1], 3, axis=2)
        if i % 7 == 0:
            img[:] = rng.integers(0, 256)
        factor = float(rng.uniform(0, 2))
        np.testing.assert_array_equal(_adjust_contrast(img, factor), mmcv.adjust_contrast(img, factor))
