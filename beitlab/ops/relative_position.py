"""Position tables of BEiT as plain tensor functions (Bao et al., 2021, Sec. 2.5 and App.
"relative position bias"): the official relative position index, lookup of a bias table,
and resizing of bias tables and absolute position embeddings to another patch grid.

This is the lowest layer of the package: the backbone and the checkpoint code both import
it, and it imports neither.

The bias table holds one learnable value per head for every 2D offset between two
patches of an ``H x W`` grid, ``(2H-1)(2W-1)`` entries, plus three entries for the
CLS token: CLS->patch, patch->CLS and CLS->CLS. The index that gathers a
``[1+N, 1+N]`` bias from the table follows official BEiT exactly, so official
tables load unchanged:

- patch ``i`` at ``(hi, wi)`` to patch ``j`` at ``(hj, wj)``:
  ``(hi - hj + H - 1) * (2W - 1) + (wi - wj + W - 1)``
- query CLS (row 0): ``num_relative_distance - 3``; key CLS (column 0):
  ``num_relative_distance - 2``; CLS->CLS: ``num_relative_distance - 1``.

Also here: interpolation of a table and of an absolute position embedding to a new
grid, for fine-tuning, segmentation and detection at other resolutions. A checkpoint's
table meets a new grid through the official resize (``beit/run_class_finetuning.py`` and
``beit/semantic_segmentation/mmcv_custom/checkpoint.py``): the source offsets are placed on
a geometric-progression grid that reaches the new extent and a cubic interpolating spline
is evaluated at the new integer offsets; a table resized on the fly in the forward pass
(an input of another size) is resized bicubically, which keeps it differentiable.
"""
from typing import List, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'num_relative_distance', 'build_relative_position_index', 'gather_relative_position_bias',
    'relative_position_bias_for_grid', 'resize_rel_pos_bias_table',
    'geometric_source_offsets', 'resize_pos_embed', 'to_2tuple_grid'
]

NUM_CLS_ENTRIES = 3


def to_2tuple_grid(grid: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    """``14 -> (14, 14)``; ``(h, w)`` unchanged (as ints)."""
    if isinstance(grid, int):
        return (grid, grid)
    if len(grid) != 2:
        raise ValueError(f'a grid is (H, W) in patches, got {grid!r}')
    return (int(grid[0]), int(grid[1]))


def num_relative_distance(grid: Union[int, Tuple[int, int]]) -> int:
    """Number of table entries for a grid: ``(2H-1)(2W-1) + 3``."""
    h, w = to_2tuple_grid(grid)
    return (2 * h - 1) * (2 * w - 1) + NUM_CLS_ENTRIES


def build_relative_position_index(grid: Union[int, Tuple[int, int]]) -> Tensor:
    """Official BEiT index into the bias table.

    Returns:
        index: ``[1+N, 1+N] int64``, N = H*W, tokens in order (CLS, row-major patches).
    """
    h, w = to_2tuple_grid(grid)
    coords = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    coords = torch.stack(coords).flatten(1)  # [2, N] (row, col) of each patch, row-major
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # [N, N, 2]
    patch_index = (rel[..., 0] + h - 1) * (2 * w - 1) + (rel[..., 1] + w - 1)  # [N, N]
    total = num_relative_distance((h, w))
    index = torch.zeros((h * w + 1, h * w + 1), dtype=torch.int64)
    index[1:, 1:] = patch_index
    index[0, :] = total - 3  # CLS as query -> any token
    index[:, 0] = total - 2  # any token -> CLS as key
    index[0, 0] = total - 1  # CLS -> CLS
    return index


def gather_relative_position_bias(table: Tensor, index: Tensor) -> Tensor:
    """Look the bias up: ``table: [num_rel, heads]``, ``index: [T, T]`` -> ``[heads, T, T]``."""
    t = index.shape[0]
    return table[index.reshape(-1)].reshape(t, t, -1).permute(2, 0, 1).contiguous()


def relative_position_bias_for_grid(table: Tensor, index: Tensor, table_grid: Tuple[int, int],
                                    grid: Union[Tuple[int, int], None] = None) -> Tensor:
    """Bias ``[heads, 1+N, 1+N]`` for ``grid`` from a table built for ``table_grid``."""
    if grid is None or tuple(grid) == tuple(table_grid):
        return gather_relative_position_bias(table, index)
    table = resize_rel_pos_bias_table(table, table_grid, grid, method='bicubic')
    index = build_relative_position_index(grid).to(table.device)
    return gather_relative_position_bias(table, index)


def geometric_source_offsets(src_len: int, dst_len: int) -> Tuple[np.ndarray, np.ndarray]:
    """Where official BEiT places the offsets of a table side of ``src_len`` entries, and
    the offsets it samples for a side of ``dst_len`` entries.

    The distances from the centre grow geometrically, ``1, 1 + q, 1 + q + q^2, ...``, with
    the ratio ``q`` found by bisection on ``[1.01, 1.5]`` (to 1e-6) so that the
    ``src_len // 2`` steps reach ``dst_len // 2``; offsets -1, 0 and 1 stay where they are.
    Returns ``(source coordinates [src_len], target offsets [dst_len])``, both ascending.
    """
    half_src, half_dst = src_len // 2, dst_len // 2
    left, right = 1.01, 1.5
    ratio = left
    while right - left > 1e-6:
        ratio = (left + right) / 2.0
        if (1.0 - ratio ** half_src) / (1.0 - ratio) > half_dst:
            right = ratio
        else:
            left = ratio
    distances: List[float] = []
    current = 1.0
    for i in range(half_src):
        distances.append(current)
        current += ratio ** (i + 1)
    source = np.array([-d for d in reversed(distances)] + [0.0] + distances)
    target = np.arange(-(dst_len // 2.0), dst_len // 2.0 + 0.1, 1.0)
    return source, target


def _geometric_resize_offsets(offsets: Tensor, dst_shape: Tuple[int, int]) -> Tensor:
    """``offsets: [heads, 2H-1, 2W-1]`` -> ``[heads, 2H'-1, 2W'-1]`` by the official geometric
    resize; a side whose length does not change keeps its integer offsets."""
    from scipy.interpolate import RectBivariateSpline  # the grid replacement of interp2d

    coords = []
    for src_len, dst_len in zip(offsets.shape[1:], dst_shape):
        if src_len == dst_len:
            grid = np.arange(src_len, dtype=np.float64) - src_len // 2
            coords.append((grid, grid))
        else:
            coords.append(geometric_source_offsets(src_len, dst_len))
    (src_h, dst_h), (src_w, dst_w) = coords
    values = offsets.detach().double().cpu().numpy()
    resized = [RectBivariateSpline(src_h, src_w, head, kx=3, ky=3, s=0)(dst_h, dst_w)
               for head in values]
    return torch.from_numpy(np.stack(resized)).to(offsets.device)


def resize_rel_pos_bias_table(table: Tensor, src_grid: Union[int, Tuple[int, int]],
                              dst_grid: Union[int, Tuple[int, int]],
                              method: str = 'geometric') -> Tensor:
    """Interpolate a bias table to another grid; the 3 CLS entries are kept as they are.

    The ``(2H-1)(2W-1)`` offset part is a 2D map over (dh, dw) per head (row-major, the
    layout of :func:`build_relative_position_index`). ``method='geometric'`` is the
    official fine-tuning resize (see :func:`geometric_source_offsets`; a cubic spline
    through the source values, SciPy's ``RectBivariateSpline`` with ``s=0``, which is what
    the official ``interp2d(kind='cubic')`` computes on a grid); ``'bicubic'`` is
    ``F.interpolate`` (differentiable, used for on-the-fly resizing in the forward pass).

    Args:
        table: ``[(2H-1)(2W-1)+3, heads]`` for ``src_grid``.
    Returns:
        ``[(2H'-1)(2W'-1)+3, heads]`` for ``dst_grid``.
    """
    if method not in ('geometric', 'bicubic'):
        raise ValueError(f"relative position bias resize method {method!r}: expected "
                         f"'geometric' (official) or 'bicubic'")
    src_h, src_w = to_2tuple_grid(src_grid)
    dst_h, dst_w = to_2tuple_grid(dst_grid)
    expected = num_relative_distance((src_h, src_w))
    if table.dim() != 2 or table.shape[0] != expected:
        raise ValueError(f'relative position bias table of shape {tuple(table.shape)} does not fit '
                         f'grid {(src_h, src_w)}: expected [{expected}, heads]')
    if (src_h, src_w) == (dst_h, dst_w):
        return table
    heads = table.shape[1]
    offsets, cls_entries = table[:-NUM_CLS_ENTRIES], table[-NUM_CLS_ENTRIES:]
    offsets = offsets.T.reshape(heads, 2 * src_h - 1, 2 * src_w - 1)
    dst_shape = (2 * dst_h - 1, 2 * dst_w - 1)
    if method == 'geometric':
        offsets = _geometric_resize_offsets(offsets, dst_shape).to(table.dtype)
    else:
        offsets = F.interpolate(offsets[None].float(), size=dst_shape, mode='bicubic',
                                align_corners=False).to(table.dtype)[0]
    offsets = offsets.reshape(heads, -1).T
    return torch.cat([offsets, cls_entries], dim=0)


def resize_pos_embed(pos_embed: Tensor, src_grid: Union[int, Tuple[int, int]],
                     dst_grid: Union[int, Tuple[int, int]], num_extra_tokens: int = 1) -> Tensor:
    """Interpolate an absolute position embedding to another grid (bicubic).

    Args:
        pos_embed: ``[1, num_extra_tokens + H*W, D]``; the extra (CLS) positions come first
            and are kept unchanged.
    Returns:
        ``[1, num_extra_tokens + H'*W', D]``.
    """
    src_h, src_w = to_2tuple_grid(src_grid)
    dst_h, dst_w = to_2tuple_grid(dst_grid)
    if pos_embed.dim() != 3 or pos_embed.shape[1] != num_extra_tokens + src_h * src_w:
        raise ValueError(f'pos_embed of shape {tuple(pos_embed.shape)} does not fit grid '
                         f'{(src_h, src_w)} with {num_extra_tokens} extra tokens: expected '
                         f'[1, {num_extra_tokens + src_h * src_w}, D]')
    if (src_h, src_w) == (dst_h, dst_w):
        return pos_embed
    extra, patches = pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]
    dim = pos_embed.shape[2]
    patches = patches.reshape(1, src_h, src_w, dim).permute(0, 3, 1, 2)
    patches = F.interpolate(patches.float(), size=(dst_h, dst_w), mode='bicubic',
                            align_corners=False).to(pos_embed.dtype)
    patches = patches.permute(0, 2, 3, 1).reshape(1, dst_h * dst_w, dim)
    return torch.cat([extra, patches], dim=1)
