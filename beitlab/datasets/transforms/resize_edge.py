"""Resize so that one edge has a given length, keeping the aspect ratio (evaluation resize)."""
import mmcv
from mmcv.transforms import BaseTransform

from beitlab.registry import TRANSFORMS

__all__ = ['ResizeEdge']


@TRANSFORMS.register_module()
class ResizeEdge(BaseTransform):
    """Resize the shorter (or longer) edge to ``scale`` pixels; the evaluation pipeline is
    ``ResizeEdge(size / crop_pct)`` then mmcv's ``CenterCrop(size)`` (BEiT: crop_pct 0.875
    at 224 px, so 256 then 224).

    Args:
        scale: target length of the chosen edge.
        edge: 'short' or 'long'.
        interpolation: 'bicubic' (timm's evaluation default for BEiT), 'bilinear', ...

    Modifies ``img`` and ``img_shape``; adds ``scale_factor`` (w, h).
    """

    def __init__(self, scale: int = 256, edge: str = 'short', interpolation: str = 'bicubic') -> None:
        if edge not in ('short', 'long'):
            raise ValueError(f"ResizeEdge: edge must be 'short' or 'long', got {edge!r}")
        if scale <= 0:
            raise ValueError(f'ResizeEdge: scale must be positive, got {scale}')
        self.scale, self.edge, self.interpolation = int(scale), edge, interpolation

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        ref = min(h, w) if self.edge == 'short' else max(h, w)
        new_w, new_h = round(w * self.scale / ref), round(h * self.scale / ref)
        if (new_h, new_w) != (h, w):
            img = mmcv.imresize(img, (new_w, new_h), interpolation=self.interpolation,
                                backend='pillow')
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['scale_factor'] = (new_w / w, new_h / h)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, edge={self.edge!r}, '
                f'interpolation={self.interpolation!r})')
