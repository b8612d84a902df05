"""Window partition helpers for windowed self-attention in a plain ViT.

ViTDet (Li et al., 2022, Sec. 3 "Backbone adaptation"): most blocks attend within
non-overlapping ``window_size x window_size`` windows of the patch grid, a few keep
global attention; ``BEiTViT(window_size, global_attn_indexes)`` runs its blocks that way.
These two functions cut a patch grid into windows (zero-padding it to a multiple of the
window) and put it back together.
"""
from typing import Tuple

import torch
from torch import Tensor

__all__ = ['window_partition', 'window_unpartition']


def window_partition(x: Tensor, window_size: int) -> Tuple[Tensor, Tuple[int, int]]:
    """Cut ``x: [B, H, W, C]`` into windows ``[B * nW, ws, ws, C]`` (zero-padding H, W up to
    multiples of ``ws``), window-major in row-major window order; also returns the padded
    size ``(Hp, Wp)``."""
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
    """Inverse of :func:`window_partition`: ``[B * nW, ws, ws, C]`` -> ``[B, H, W, C]``
    (the padding cropped off)."""
    hp, wp = pad_hw
    h, w = hw
    b = windows.shape[0] // ((hp // window_size) * (wp // window_size))
    x = windows.view(b, hp // window_size, wp // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w].contiguous()
