"""A custom masking generator: mask whole random rows or columns of patches ("stripes").

Registered into beitlab's MASK_GENERATORS from outside the package; the config loads
this module with ``custom_imports`` and names it ``StripeMaskGenerator``.
"""
from typing import Tuple, Union

import numpy as np

from beitlab.registry import MASK_GENERATORS


@MASK_GENERATORS.register_module()
class StripeMaskGenerator:
    """Mask ``num_stripes`` random full rows or full columns of the patch grid.

    Args:
        input_size: patch grid ``H`` or ``(H, W)``.
        num_stripes: stripes masked per sample.
        vertical_prob: probability that a sample uses columns instead of rows.

    ``__call__() -> np.ndarray [H, W] bool`` (True = masked), the MASK_GENERATORS contract.
    """

    def __init__(self, input_size: Union[int, Tuple[int, int]] = 14, num_stripes: int = 4,
                 vertical_prob: float = 0.5) -> None:
        self.input_size = (input_size, input_size) if isinstance(input_size, int) \
            else tuple(input_size)
        self.num_patches = self.input_size[0] * self.input_size[1]
        if not 0 < num_stripes < min(self.input_size):
            raise ValueError(f'StripeMaskGenerator: num_stripes={num_stripes} must lie in '
                             f'(0, {min(self.input_size)}) for a grid of {self.input_size}')
        self.num_stripes = num_stripes
        self.vertical_prob = vertical_prob

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(input_size={self.input_size}, '
                f'num_stripes={self.num_stripes})')

    def __call__(self) -> np.ndarray:
        H, W = self.input_size
        mask = np.zeros((H, W), dtype=bool)
        if np.random.rand() < self.vertical_prob:
            mask[:, np.random.choice(W, self.num_stripes, replace=False)] = True
        else:
            mask[np.random.choice(H, self.num_stripes, replace=False), :] = True
        return mask
