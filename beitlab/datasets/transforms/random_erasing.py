"""Random erasing (Zhong et al., 2020) as in BEiT fine-tuning (prob 0.25, timm ``mode='pixel'``)."""
import math
from typing import Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from beitlab.registry import TRANSFORMS

__all__ = ['RandomErasing']


@TRANSFORMS.register_module()
class RandomErasing(BaseTransform):
    """With probability ``prob``, replace one random box of the image by noise.

    The box has an area fraction uniform in ``area_range`` and a log-uniform aspect ratio in
    ``aspect_range`` (up to 10 tries). timm erases the normalised tensor with per-pixel
    N(0, 1) noise (``mode='pixel'``); on the uint8 image before normalisation the same thing
    is per-pixel noise ``mean + std * N(0, 1)``, clipped to [0, 255], which is what
    ``mode='pixel'`` does here (``mode='const'`` fills ``mean``).

    Args:
        prob: probability of erasing (0.25 in BEiT).
        area_range: range of the erased area fraction.
        aspect_range: range of the box aspect ratio h/w.
        mode: 'pixel' or 'const'.
        mean, std: per-channel statistics in the image's channel order (BGR from mmcv).

    Modifies ``img`` [H, W, C] uint8.
    """

    def __init__(self, prob: float = 0.25, area_range: Tuple[float, float] = (0.02, 1 / 3),
                 aspect_range: Tuple[float, float] = (0.3, 1 / 0.3), mode: str = 'pixel',
                 mean: Tuple[float, ...] = (103.53, 116.28, 123.675),
                 std: Tuple[float, ...] = (57.375, 57.12, 58.395)) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'RandomErasing: prob must be in [0, 1], got {prob}')
        if mode not in ('pixel', 'const'):
            raise ValueError(f"RandomErasing: mode must be 'pixel' or 'const', got {mode!r}")
        self.prob, self.mode = prob, mode
        self.area_range, self.aspect_range = tuple(area_range), tuple(aspect_range)
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        img: np.ndarray = results['img']
        h, w = img.shape[:2]
        channels = 1 if img.ndim == 2 else img.shape[2]
        mean = self.mean[:channels] if len(self.mean) >= channels else np.full(channels, self.mean[0])
        std = self.std[:channels] if len(self.std) >= channels else np.full(channels, self.std[0])
        log_aspect = (math.log(self.aspect_range[0]), math.log(self.aspect_range[1]))
        for _ in range(10):
            area = h * w * np.random.uniform(*self.area_range)
            aspect = math.exp(np.random.uniform(*log_aspect))
            eh, ew = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if 0 < eh < h and 0 < ew < w:
                top, left = np.random.randint(0, h - eh + 1), np.random.randint(0, w - ew + 1)
                if self.mode == 'pixel':
                    fill = mean + std * np.random.randn(eh, ew, channels).astype(np.float32)
                else:
                    fill = np.broadcast_to(mean, (eh, ew, channels))
                fill = np.clip(np.rint(fill), 0, 255).astype(img.dtype)
                img = img.copy()
                img[top:top + eh, left:left + ew] = fill if img.ndim == 3 else fill[..., 0]
                break
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, area_range={self.area_range}, '
                f'aspect_range={self.aspect_range}, mode={self.mode!r})')
