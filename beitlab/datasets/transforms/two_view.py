"""The two views of BEiT pre-training (Sec. 2.1 / 2.5): one crop, two resolutions.

Official BEiT (``RandomResizedCropAndInterpolationWithTwoPic``) draws ONE random-resized-crop
box and resizes it twice: 224 px bicubic for the ViT and 112 px lanczos for the tokenizer,
so every ViT patch (16 px) and its visual token (8 px of the 112 px view) see the same region.
"""
import math
from typing import Sequence, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from beitlab.registry import TRANSFORMS

__all__ = ['TwoViewRandomResizedCrop', 'PackTwoViewInputs']


def _pair(x: Union[int, Sequence[int]]) -> tuple[int, int]:
    return (int(x), int(x)) if isinstance(x, (int, np.integer)) else (int(x[0]), int(x[1]))


@TRANSFORMS.register_module()
class TwoViewRandomResizedCrop(BaseTransform):
    """One random-resized-crop box resized to the ViT view and to the tokenizer view.

    The box follows torchvision's ``RandomResizedCrop.get_params``: up to 10 tries of an
    area fraction uniform in ``scale`` and a log-uniform aspect ratio (w/h) in ``ratio``,
    then a centre crop clamped to ``ratio``. Resizing uses Pillow (as official BEiT does),
    through ``mmcv.imresize(backend='pillow')``.

    Args:
        size: ViT view (H, W) or side (224 in BEiT).
        second_size: tokenizer view (112 in BEiT).
        scale: range of the crop area as a fraction of the image area.
        ratio: range of the crop aspect ratio w/h.
        interpolation: resampling of the ViT view ('bicubic' in BEiT).
        second_interpolation: resampling of the tokenizer view ('lanczos' in BEiT).

    Writes ``img`` (ViT view, [size, 3] uint8), ``img_tok`` (tokenizer view), ``img_shape``
    and ``crop_bbox`` (x1, y1, x2, y2) in the input image.
    """

    def __init__(self,
                 size: Union[int, Sequence[int]] = 224,
                 second_size: Union[int, Sequence[int]] = 112,
                 scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3. / 4., 4. / 3.),
                 interpolation: str = 'bicubic',
                 second_interpolation: str = 'lanczos',
                 max_attempts: int = 10) -> None:
        if not (0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1]):
            raise ValueError(f'TwoViewRandomResizedCrop: need 0 < scale[0] <= scale[1] and '
                             f'0 < ratio[0] <= ratio[1], got scale={scale}, ratio={ratio}')
        self.size = _pair(size)
        self.second_size = _pair(second_size)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation = interpolation
        self.second_interpolation = second_interpolation
        self.max_attempts = max_attempts

    def get_params(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Crop box ``(top, left, h, w)`` in an image of ``height x width``."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(self.max_attempts):
            target_area = area * np.random.uniform(*self.scale)
            aspect_ratio = math.exp(np.random.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect_ratio)))
            h = int(round(math.sqrt(target_area / aspect_ratio)))
            if 0 < w <= width and 0 < h <= height:
                top = int(np.random.randint(0, height - h + 1))
                left = int(np.random.randint(0, width - w + 1))
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def transform(self, results: dict) -> dict:
        img: np.ndarray = results['img']
        top, left, h, w = self.get_params(*img.shape[:2])
        crop = img[top:top + h, left:left + w]
        # mmcv sizes are (w, h)
        results['img'] = mmcv.imresize(crop, self.size[::-1], interpolation=self.interpolation,
                                       backend='pillow')
        results['img_tok'] = mmcv.imresize(crop, self.second_size[::-1],
                                           interpolation=self.second_interpolation,
                                           backend='pillow')
        results['img_shape'] = self.size
        results['crop_bbox'] = (left, top, left + w, top + h)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, second_size={self.second_size}, '
                f'scale={self.scale}, ratio={self.ratio}, interpolation={self.interpolation!r}, '
                f'second_interpolation={self.second_interpolation!r})')


@TRANSFORMS.register_module()
class PackTwoViewInputs(BaseTransform):
    """Pack the two views and the mask for a MIM algorithm.

    ``inputs = [img_vit [3, H, W] uint8, img_tok [3, h, w] uint8]`` (channel order as
    loaded, BGR with mmcv; the data preprocessor converts and normalises each view), and
    ``data_samples`` a ``BaseDataElement`` with ``mask`` ([H/P, W/P] bool tensor) and the
    ``meta_keys`` found in ``results`` as metainfo.

    Args:
        meta_keys: result keys copied into the metainfo when present.
    """

    def __init__(self, meta_keys: Sequence[str] = ('img_path', 'ori_shape', 'img_shape',
                                                   'crop_bbox', 'flip')) -> None:
        self.meta_keys = tuple(meta_keys)

    @staticmethod
    def _to_tensor(img: np.ndarray) -> torch.Tensor:
        if img.ndim == 2:
            img = img[..., None]
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))

    def transform(self, results: dict) -> dict:
        for key in ('img', 'img_tok', 'mask'):
            if key not in results:
                raise KeyError(f'PackTwoViewInputs needs results[{key!r}]; put '
                               'TwoViewRandomResizedCrop and GenerateMask before it in the '
                               f'pipeline (found keys {sorted(results)})')
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        sample.mask = torch.from_numpy(np.ascontiguousarray(results['mask'], dtype=bool))
        return dict(inputs=[self._to_tensor(results['img']), self._to_tensor(results['img_tok'])],
                    data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
