"""RandAugment (Cubuk et al., 2020) in timm's ``rand-m9-mstd0.5-inc1`` form, used by BEiT
fine-tuning (App. "fine-tuning": RandAugment (9, 0.5)).

Per image, ``num_ops`` operations are drawn uniformly (with replacement) from the 15 below;
each is applied with probability ``op_prob``, at a magnitude drawn from
``N(magnitude, magnitude_std)`` clipped to ``[0, 10]``. The "increasing" variants make every
operation stronger as the magnitude grows (timm's ``inc1``). Pillow implements the
operations, as in timm.
"""
import random
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image, ImageEnhance, ImageOps

from beitlab.registry import TRANSFORMS

__all__ = ['RandAugment', 'RAND_AUGMENT_OPS']

MAX_LEVEL = 10.0


def _signed(v: float) -> float:
    return -v if random.random() < 0.5 else v


def _affine(img: Image.Image, matrix: Tuple[float, ...], fill: Tuple[int, ...]) -> Image.Image:
    return img.transform(img.size, Image.AFFINE, matrix, resample=Image.BILINEAR, fillcolor=fill)


def _enhance(enhancer: Callable) -> Callable:
    # increasing: factor 1 +/- 0.9 * m / 10
    return lambda img, m, fill: enhancer(img).enhance(1.0 + _signed(m / MAX_LEVEL * 0.9))


RAND_AUGMENT_OPS: Dict[str, Callable[[Image.Image, float, Tuple[int, ...]], Image.Image]] = {
    'AutoContrast': lambda img, m, fill: ImageOps.autocontrast(img),
    'Equalize': lambda img, m, fill: ImageOps.equalize(img),
    'Invert': lambda img, m, fill: ImageOps.invert(img),
    'Rotate': lambda img, m, fill: img.rotate(_signed(m / MAX_LEVEL * 30.0),
                                              resample=Image.BILINEAR, fillcolor=fill),
    'PosterizeIncreasing': lambda img, m, fill: ImageOps.posterize(
        img, max(1, 4 - int(m / MAX_LEVEL * 4))),
    'SolarizeIncreasing': lambda img, m, fill: ImageOps.solarize(
        img, 256 - int(m / MAX_LEVEL * 256)),
    'SolarizeAdd': lambda img, m, fill: Image.fromarray(np.where(
        np.asarray(img) < 128,
        np.minimum(np.asarray(img).astype(np.int32) + int(m / MAX_LEVEL * 110), 255),
        np.asarray(img)).astype(np.uint8)),
    'ColorIncreasing': _enhance(ImageEnhance.Color),
    'ContrastIncreasing': _enhance(ImageEnhance.Contrast),
    'BrightnessIncreasing': _enhance(ImageEnhance.Brightness),
    'SharpnessIncreasing': _enhance(ImageEnhance.Sharpness),
    'ShearX': lambda img, m, fill: _affine(img, (1, _signed(m / MAX_LEVEL * 0.3), 0, 0, 1, 0), fill),
    'ShearY': lambda img, m, fill: _affine(img, (1, 0, 0, _signed(m / MAX_LEVEL * 0.3), 1, 0), fill),
    'TranslateXRel': lambda img, m, fill: _affine(
        img, (1, 0, _signed(m / MAX_LEVEL * 0.45) * img.size[0], 0, 1, 0), fill),
    'TranslateYRel': lambda img, m, fill: _affine(
        img, (1, 0, 0, 0, 1, _signed(m / MAX_LEVEL * 0.45) * img.size[1]), fill),
}


@TRANSFORMS.register_module()
class RandAugment(BaseTransform):
    """timm-style RandAugment on a uint8 image (BGR from mmcv, or grayscale).

    Args:
        magnitude: mean magnitude m in [0, 10] (9 in BEiT).
        magnitude_std: std of the per-op magnitude (0.5 in BEiT).
        num_ops: operations per image (2, timm's default).
        op_prob: probability of applying each drawn operation (0.5, timm's default).
        fill: fill colour of geometric operations, RGB (timm: the ImageNet mean).
        ops: names from :data:`RAND_AUGMENT_OPS` (default: all 15).

    Uses Python's ``random`` (seeded by mmengine's ``randomness.seed``). Modifies ``img``.
    """

    def __init__(self, magnitude: float = 9.0, magnitude_std: float = 0.5, num_ops: int = 2,
                 op_prob: float = 0.5, fill: Sequence[int] = (124, 116, 104),
                 ops: Sequence[str] = tuple(RAND_AUGMENT_OPS)) -> None:
        unknown = [o for o in ops if o not in RAND_AUGMENT_OPS]
        if unknown:
            raise KeyError(f'RandAugment: unknown ops {unknown}; known: {sorted(RAND_AUGMENT_OPS)}')
        if not 0 <= magnitude <= MAX_LEVEL:
            raise ValueError(f'RandAugment: magnitude must be in [0, {MAX_LEVEL}], got {magnitude}')
        self.magnitude, self.magnitude_std = float(magnitude), float(magnitude_std)
        self.num_ops, self.op_prob = int(num_ops), float(op_prob)
        self.fill = tuple(int(v) for v in fill)
        self.ops = tuple(ops)

    def _magnitude(self) -> float:
        m = self.magnitude
        if self.magnitude_std > 0:
            m = random.gauss(m, self.magnitude_std)
        return float(min(MAX_LEVEL, max(0.0, m)))

    def transform(self, results: dict) -> dict:
        img: np.ndarray = results['img']
        if img.dtype != np.uint8:
            raise ValueError(f'RandAugment expects a uint8 image, got {img.dtype}')
        gray = img.ndim == 2 or img.shape[2] == 1
        pil = Image.fromarray(img.reshape(img.shape[:2]) if gray else img[..., ::-1].copy())
        fill = (self.fill[0], ) if gray else self.fill
        for name in random.choices(self.ops, k=self.num_ops):
            if random.random() < self.op_prob:
                pil = RAND_AUGMENT_OPS[name](pil, self._magnitude(), fill)
        out = np.asarray(pil)
        results['img'] = out.reshape(img.shape) if gray else np.ascontiguousarray(out[..., ::-1])
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(magnitude={self.magnitude}, '
                f'magnitude_std={self.magnitude_std}, num_ops={self.num_ops}, '
                f'op_prob={self.op_prob})')
