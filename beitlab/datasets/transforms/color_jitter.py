"""Colour jitter of BEiT pre-training (official ``ColorJitter(0.4, 0.4, 0.4)``, Sec. 2.5)."""
import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from beitlab.registry import TRANSFORMS

__all__ = ['ColorJitter']


def _adjust_hue(img: np.ndarray, hue_factor: float) -> np.ndarray:
    """Rotate the hue of a BGR uint8 image by ``hue_factor`` turns (in [-0.5, 0.5]).

    Integer arithmetic on OpenCV's 0..179 hue channel; ``mmcv.adjust_hue`` is not used
    because it overflows on numpy 2 for negative factors (``np.uint8`` of a negative value).
    """
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    shift = int(round(hue_factor * 180))
    hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def _adjust_contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """``mmcv.adjust_contrast`` (its cv2 arithmetic), the same values without its histogram.

    mmcv blends the image with its mean grey level, ``round(sum(gray) / sum(hist))`` where
    the 256-bin histogram over [0, 255] of a uint8 image counts every pixel, i.e.
    ``sum(hist) == gray.size``; ``np.histogram`` cost more than the rest of the adjustment
    on small images (0.09 ms of 0.16 ms per 32 px image). Other backends than cv2 (set with
    ``mmcv.use_backend``) go to mmcv.
    """
    if mmcv.image.io.imread_backend != 'cv2' or img.dtype != np.uint8:
        return mmcv.adjust_contrast(img, factor)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    mean = round(np.sum(gray) / gray.size)
    degenerated = np.full(img.shape, mean, dtype=np.float32)
    contrasted = cv2.addWeighted(img.astype(np.float32), factor, degenerated, 1 - factor, 0)
    return np.clip(contrasted, 0, 255).astype(img.dtype)


@TRANSFORMS.register_module()
class ColorJitter(BaseTransform):
    """Random brightness, contrast, saturation (and hue) in random order, like torchvision.

    Each factor is drawn uniformly from ``[max(0, 1 - x), 1 + x]`` (hue: ``[-x, x]``) and
    the enabled adjustments are applied in a random permutation. Brightness, contrast and
    saturation use ``mmcv.image.adjust_brightness/adjust_contrast/adjust_color`` (contrast
    through :func:`_adjust_contrast`, the same values faster), which expect BGR (mmcv's
    decoding order; ``LoadImageChecked`` gives BGR). Official BEiT pre-training uses
    ``brightness = contrast = saturation = 0.4`` and no hue jitter.

    Args:
        brightness, contrast, saturation: jitter strengths (>= 0).
        hue: hue jitter strength in [0, 0.5].

    Modifies ``img`` [H, W, 3] uint8 (BGR).
    """

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4,
                 saturation: float = 0.4, hue: float = 0.0) -> None:
        for name, value in (('brightness', brightness), ('contrast', contrast),
                            ('saturation', saturation)):
            if value < 0:
                raise ValueError(f'ColorJitter: {name}={value} must be >= 0')
        if not 0 <= hue <= 0.5:
            raise ValueError(f'ColorJitter: hue={hue} must lie in [0, 0.5]')
        self.brightness, self.contrast, self.saturation, self.hue = (
            brightness, contrast, saturation, hue)

    @staticmethod
    def _factor(strength: float) -> float:
        return float(np.random.uniform(max(0.0, 1 - strength), 1 + strength))

    def transform(self, results: dict) -> dict:
        img: np.ndarray = results['img']
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'ColorJitter expects an [H, W, 3] uint8 BGR image, got '
                             f'shape {img.shape} dtype {img.dtype}')
        ops = []
        if self.brightness > 0:
            ops.append(lambda x: mmcv.adjust_brightness(x, self._factor(self.brightness)))
        if self.contrast > 0:
            ops.append(lambda x: _adjust_contrast(x, self._factor(self.contrast)))
        if self.saturation > 0:
            ops.append(lambda x: mmcv.adjust_color(x, self._factor(self.saturation)))
        if self.hue > 0:
            ops.append(lambda x: _adjust_hue(x, float(np.random.uniform(-self.hue, self.hue))))
        for i in np.random.permutation(len(ops)):
            img = np.clip(ops[i](img), 0, 255).astype(np.uint8)
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness={self.brightness}, '
                f'contrast={self.contrast}, saturation={self.saturation}, hue={self.hue})')
