"""SimMIM's coarse random mask.

Xie et al., "SimMIM: A Simple Framework for Masked Image Modeling" (CVPR 2022),
Sec. 3.2 and Table 1: random masking of large (32 x 32 px) mask patches at ratio
0.6 works best; the coarse mask is then upsampled to the model's patch grid, so
every model patch inside a masked mask patch is masked.
"""
from typing import Tuple, Union

import numpy as np

from beitlab.registry import MASK_GENERATORS

from .checks import check_mask_count

__all__ = ['SimMIMMaskGenerator']


def _pair(x: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    return (x, x) if isinstance(x, int) else (int(x[0]), int(x[1]))


@MASK_GENERATORS.register_module()
class SimMIMMaskGenerator:
    """Random mask over ``mask_patch_size`` px squares, upsampled to the ViT patch grid.

    Args:
        img_size: image side (or (H, W)) in pixels.
        mask_patch_size: side of one mask square in pixels (32 in the paper).
        model_patch_size: ViT patch size P; must divide ``mask_patch_size``.
        mask_ratio: fraction of mask squares masked (0.6 in the paper); exactly
            ``ceil(ratio * squares)`` are masked in every sample; a ratio that masks
            no square or every square is a ``ValueError``.

    Draws from numpy's global RNG, which mmengine seeds per data-loader worker
    (an RNG object built here would be copied identically into every worker).

    ``__call__() -> np.ndarray [H/P, W/P] bool`` (True = masked), row-major.
    """

    def __init__(self,
                 img_size: Union[int, Tuple[int, int]] = 192,
                 mask_patch_size: int = 32,
                 model_patch_size: int = 4,
                 mask_ratio: float = 0.6) -> None:
        H, W = _pair(img_size)
        if H % mask_patch_size or W % mask_patch_size:
            raise ValueError(f'SimMIMMaskGenerator: img_size={img_size} is not a multiple of '
                             f'mask_patch_size={mask_patch_size}')
        if mask_patch_size % model_patch_size:
            raise ValueError(f'SimMIMMaskGenerator: mask_patch_size={mask_patch_size} is not a '
                             f'multiple of model_patch_size={model_patch_size}')
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f'SimMIMMaskGenerator: mask_ratio={mask_ratio} must lie in (0, 1): '
                             '0 masks no patch, 1 masks every patch')
        self.mask_grid = (H // mask_patch_size, W // mask_patch_size)
        self.scale = mask_patch_size // model_patch_size
        self.input_size = (H // model_patch_size, W // model_patch_size)
        self.num_patches = self.input_size[0] * self.input_size[1]
        self.mask_ratio = mask_ratio
        num_squares = self.mask_grid[0] * self.mask_grid[1]
        self.num_masked_squares = int(np.ceil(num_squares * mask_ratio))
        check_mask_count('SimMIMMaskGenerator',
                         f'mask_ratio={mask_ratio} of {mask_patch_size} px mask squares',
                         self.num_masked_squares, num_squares,
                         f'{self.mask_grid[0]}x{self.mask_grid[1]} square')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(input_size={self.input_size}, mask_grid={self.mask_grid}, '
                f'mask_ratio={self.mask_ratio})')

    def __call__(self) -> np.ndarray:
        n = self.mask_grid[0] * self.mask_grid[1]
        coarse = np.zeros(n, dtype=bool)
        coarse[np.random.permutation(n)[:self.num_masked_squares]] = True
        coarse = coarse.reshape(self.mask_grid)
        return coarse.repeat(self.scale, axis=0).repeat(self.scale, axis=1)
