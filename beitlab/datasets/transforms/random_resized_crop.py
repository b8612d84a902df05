"""Random resized crop for fine-tuning (BEiT App. "fine-tuning", after DeiT / timm)."""
from typing import Sequence, Tuple, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from beitlab.datasets.transforms.two_view import TwoViewRandomResizedCrop
from beitlab.registry import TRANSFORMS

__all__ = ['RandomResizedCrop']


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """Crop a random box (area fraction in ``scale``, log-uniform aspect ratio in ``ratio``,
    torchvision's sampling, shared with :class:`TwoViewRandomResizedCrop`) and resize it to
    ``size`` with Pillow.

    Args:
        size: output (H, W) or side.
        scale: range of the crop area as a fraction of the image area (0.08-1 on ImageNet).
        ratio: range of the crop aspect ratio w/h.
        interpolation: 'bicubic' (timm's default for BEiT), 'bilinear', ...

    Modifies ``img`` and ``img_shape``; adds ``crop_bbox`` (x1, y1, x2, y2).
    """

    def __init__(self, size: Union[int, Sequence[int]] = 224,
                 scale: Tuple[float, float] = (0.08, 1.0),
                 ratio: Tuple[float, float] = (3. / 4., 4. / 3.),
                 interpolation: str = 'bicubic') -> None:
        self._sampler = TwoViewRandomResizedCrop(size, size, scale, ratio, interpolation)
        self.size = self._sampler.size
        self.scale, self.ratio, self.interpolation = tuple(scale), tuple(ratio), interpolation

    def transform(self, results: dict) -> dict:
        img: np.ndarray = results['img']
        top, left, h, w = self._sampler.get_params(*img.shape[:2])
        crop = img[top:top + h, left:left + w]
        results['img'] = mmcv.imresize(crop, self.size[::-1], interpolation=self.interpolation,
                                       backend='pillow')
        results['img_shape'] = self.size
        results['crop_bbox'] = (left, top, left + w, top + h)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, scale={self.scale}, '
                f'ratio={self.ratio}, interpolation={self.interpolation!r})')
