"""The shared relative position bias module of BEiT pre-training (Bao et al., 2021, Sec. 2.5).

The index, lookup and resizing it uses are tensor functions in
:mod:`beitlab.ops.relative_position`, which the checkpoint code shares.
"""
from typing import Tuple, Union

import torch
from torch import Tensor, nn

from beitlab.ops.relative_position import (
    build_relative_position_index,
    num_relative_distance,
    relative_position_bias_for_grid,
    to_2tuple_grid,
)

__all__ = ['RelativePositionBias']


class RelativePositionBias(nn.Module):
    """One relative position bias table shared by all layers (official BEiT pre-training).

    Args:
        grid: patch grid ``(H, W)`` the index is built for.
        num_heads: attention heads; the table is ``[(2H-1)(2W-1)+3, num_heads]``.
    """

    def __init__(self, grid: Union[int, Tuple[int, int]], num_heads: int) -> None:
        super().__init__()
        self.grid = to_2tuple_grid(grid)
        self.num_heads = num_heads
        # zeros as in official BEiT (its trunc_normal_ init of the table is disabled)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros(num_relative_distance(self.grid), num_heads))
        self.register_buffer('relative_position_index', build_relative_position_index(self.grid),
                             persistent=False)

    def forward(self, grid: Union[Tuple[int, int], None] = None) -> Tensor:
        """Bias ``[heads, 1+N, 1+N]`` for ``grid`` (default: the grid it was built for).

        A different grid interpolates the table on the fly (see
        :func:`resize_rel_pos_bias_table`).
        """
        return relative_position_bias_for_grid(self.relative_position_bias_table,
                                               self.relative_position_index, self.grid, grid)

    def extra_repr(self) -> str:
        return f'grid={self.grid}, num_heads={self.num_heads}'
