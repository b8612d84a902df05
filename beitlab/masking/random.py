"""Uniform random masking (the "random" ablation of BEiT Sec. 3.3; MAE/SimMIM style)."""
from typing import Optional, Union

import numpy as np

from beitlab.registry import MASK_GENERATORS

from .checks import check_mask_count

__all__ = ['RandomMaskGenerator']


@MASK_GENERATORS.register_module()
class RandomMaskGenerator:
    """Mask a fixed number of patches drawn uniformly without replacement.

    Args:
        input_size: patch grid ``H`` or ``(H, W)``.
        mask_ratio: fraction of patches to mask (rounded to the nearest count);
            give either this or ``num_masking_patches``.
        num_masking_patches: exact number of patches to mask.

    A setting that masks no patch or every patch is a ``ValueError``.
    """

    def __init__(self,
                 input_size: Union[int, tuple[int, int]] = 14,
                 mask_ratio: Optional[float] = None,
                 num_masking_patches: Optional[int] = None) -> None:
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        self.input_size: tuple[int, int] = tuple(input_size)
        self.num_patches = self.input_size[0] * self.input_size[1]
        if (mask_ratio is None) == (num_masking_patches is None):
            raise ValueError('give exactly one of mask_ratio and num_masking_patches, got '
                             f'mask_ratio={mask_ratio}, num_masking_patches={num_masking_patches}')
        if mask_ratio is not None:
            if not 0 < mask_ratio < 1:
                raise ValueError(f'RandomMaskGenerator: mask_ratio={mask_ratio} must lie in '
                                 '(0, 1): 0 masks no patch, 1 masks every patch')
            setting = f'mask_ratio={mask_ratio} ({round(mask_ratio * self.num_patches)} patches)'
            num_masking_patches = int(round(mask_ratio * self.num_patches))
        else:
            setting = f'num_masking_patches={num_masking_patches}'
        check_mask_count('RandomMaskGenerator', setting, num_masking_patches, self.num_patches,
                         f'{self.input_size[0]}x{self.input_size[1]}')
        self.num_masking_patches = num_masking_patches

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(input_size={self.input_size}, '
                f'num_masking_patches={self.num_masking_patches})')

    def __call__(self, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """Draw one mask: [H, W] bool, True = masked, exactly ``num_masking_patches`` True.

        Args:
            rng: numpy generator; numpy's global one (seeded per worker) when ``None``.
        """
        perm = rng.permutation(self.num_patches) if rng is not None \
            else np.random.permutation(self.num_patches)
        mask = np.zeros(self.num_patches, dtype=bool)
        mask[perm[:self.num_masking_patches]] = True
        return mask.reshape(self.input_size)
