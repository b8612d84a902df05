"""Windowed self-attention for a plain ViT on large inputs, with a few global blocks.

ViTDet (Li et al., 2022, Sec. 3 "Backbone adaptation"): most blocks attend within
non-overlapping ``window_size x window_size`` windows of the patch grid (the grid is
zero-padded to a multiple of the window and, as in ViTDet, padded keys are not masked;
pick a window that divides the grid to avoid padding), and a few blocks
(``global_attn_indexes``, e.g. 2, 5, 8, 11 of 12) keep global attention to propagate
information across windows. Attention cost per windowed block drops from O(N^2) to
O(N * window_size^2).

The BEiT block is token-wise apart from attention, so a windowed block is the unchanged
:class:`BEiTBlock` run on each window as a batch element; the relative position bias is
evaluated for the window grid (for a table pre-trained on a ``w x w`` grid, windows of
``w`` patches reuse it exactly). The CLS token, if any, skips windowed blocks (ViTDet
drops it; detection does not read it) and attends globally in the global blocks.

:func:`forward_with_windows` runs a :class:`BEiTViT` this way without changing its
parameters, so pre-trained weights load as usual.
"""
from typing import Iterator, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ['window_partition', 'window_unpartition', 'windowed_block_forward', 'iter_windowed_layers',
           'forward_with_windows']

def window_partition(x: Tensor, window_size: int) -> Tuple[Tensor, Tuple[int, int]]:
    """Cut ``x: [B, H, W, C]`` into windows ``[B * nW, ws, ws, C]`` (zero-padding H, W up to
    multiples of ``ws``); also returns the padded size ``(Hp, Wp)``."""
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window_size, (-w) % window_size
    if pad_h or pad_w:
        x = torch.nn.functional.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window_size, window_size, wp // window_size, window_size, c)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)
    return windows, (hp, wp)


def window_unpartition(windows: Tensor, window_size: int, pad_hw: Tuple[int, int],
                       hw: Tuple[int, int]) -> Tensor:
    """Inverse of :func:`window_partition`: ``[B * nW, ws, ws, C]`` -> ``[B, H, W, C]``."""
    hp, wp = pad_hw
    h, w = hw
    b = windows.shape[0] // ((hp // window_size) * (wp // window_size))
    x = windows.view(b, hp // window_size, wp // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w].contiguous()


def windowed_block_forward(block: torch.nn.Module, patches: Tensor, grid: Tuple[int, int],
                           window_size: int, shared_bias: Optional[Tensor]) -> Tensor:
    """Run one BEiT block with attention restricted to windows.

    Args:
        block: a ``BEiTBlock`` (``forward(x, grid, rel_pos_bias)``).
        patches: ``[B, N, D]`` patch tokens (no CLS), N = H*W in row-major order.
        grid: ``(H, W)``.
        shared_bias: ``[heads, 1+T, 1+T]`` shared relative bias for the window grid, or None.
    Returns:
        ``[B, N, D]``.
    """
    b, n, d = patches.shape
    h, w = grid
    windows, pad_hw = window_partition(patches.view(b, h, w, d), window_size)
    windows = windows.flatten(1, 2)  # [B * nW, T, D]
    # the block slices CLS rows/columns off (shared and own tables) since windows have none
    out = block(windows, (window_size, window_size), shared_bias)
    out = window_unpartition(out.view(-1, window_size, window_size, d), window_size, pad_hw, grid)
    return out.view(b, n, d)


def iter_windowed_layers(backbone: torch.nn.Module, x: Tensor, window_size: int,
                         global_attn_indexes: Sequence[int],
                         mask: Optional[Tensor] = None) -> Iterator[Tuple[int, Tensor, Tuple[int, int]]]:
    """Like ``BEiTViT._layers``: yield ``(layer index, tokens [B, 1+N, D], grid)`` with
    windowed attention in every block not listed in ``global_attn_indexes``."""
    num_layers = len(backbone.blocks)
    global_ids = {i % num_layers for i in global_attn_indexes}
    tokens, grid = backbone.embed(x, mask)
    extra = backbone.num_extra_tokens
    rel = backbone.rel_pos_bias
    global_bias = rel(grid) if rel is not None else None
    window_bias = rel((window_size, window_size)) if rel is not None else None
    for i, block in enumerate(backbone.blocks):
        if i in global_ids:
            tokens = block(tokens, grid, global_bias)
        else:
            patches = windowed_block_forward(block, tokens[:, extra:], grid, window_size,
                                             window_bias)
            tokens = torch.cat([tokens[:, :extra], patches], dim=1)
        if i == num_layers - 1 and backbone.norm is not None:
            tokens = backbone.norm(tokens)
        yield i, tokens, grid


def forward_with_windows(backbone: torch.nn.Module, x: Tensor, window_size: int,
                         global_attn_indexes: Sequence[int],
                         mask: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
    """``BEiTViT.forward`` with windowed attention: one output per ``backbone.out_indices``."""
    outs = []
    for i, tokens, grid in iter_windowed_layers(backbone, x, window_size, global_attn_indexes,
                                                mask):
        if i in backbone.out_indices:
            outs.append(backbone._format_output(tokens, grid))
    return tuple(outs)
