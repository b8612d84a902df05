"""The data transform that draws each sample's MIM mask from a mask generator (BEiT Sec. 2.5).

It lives with the generators it calls; it is registered in ``TRANSFORMS`` so that a pipeline
names it like any other transform: ``dict(type='GenerateMask', mask_generator=dict(...))``.
"""
from typing import Union

import numpy as np
from mmcv.transforms import BaseTransform

from beitlab.registry import MASK_GENERATORS, TRANSFORMS

from .checks import probe_masks

__all__ = ['GenerateMask']


@TRANSFORMS.register_module()
class GenerateMask(BaseTransform):
    """Draw the MIM mask for this sample with a registered mask generator (BEiT Sec. 2.5).

    Args:
        mask_generator: a MASK_GENERATORS config (e.g. ``BlockwiseMaskGenerator``) or object.
            A few trial masks are drawn when the transform is built (random states kept);
            a generator whose masks hide no patch, or every patch, is a ``ValueError``.

    Writes ``mask``: [H/P, W/P] bool numpy array, True = masked, row-major.
    """

    def __init__(self, mask_generator: Union[dict, object]) -> None:
        self.mask_generator = (MASK_GENERATORS.build(mask_generator)
                               if isinstance(mask_generator, dict) else mask_generator)
        # a generator (also one from projects/) whose masks hide nothing or everything is
        # a config error: fail when the pipeline is built, not with a loss of 0
        probe_masks(self.mask_generator)

    def transform(self, results: dict) -> dict:
        results['mask'] = np.asarray(self.mask_generator(), dtype=bool)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(mask_generator={self.mask_generator!r})'
