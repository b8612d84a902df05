"""The layers of the BEiT vision Transformer (Bao et al., 2021, Sec. 2.2): patch embedding,
multi-head self-attention with q/v biases and relative position bias, the FFN, stochastic depth,
and the pre-LayerNorm block with layer scale (CaiT). Parameter names are those of the official
``beit/modeling_pretrain.py`` / ``modeling_finetune.py`` so official weights load 1:1.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beitlab.ops.attention import ATTN_IMPLS, biased_attention
from beitlab.ops.relative_position import (
    build_relative_position_index,
    num_relative_distance,
    relative_position_bias_for_grid,
    to_2tuple_grid,
)

__all__ = ['BEiTAttention', 'BEiTBlock', 'PatchEmbed', 'Mlp', 'DropPath', 'LN_EPS', 'INIT_STD']

LN_EPS = 1e-6
INIT_STD = 0.02


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample (Huang et al., 2016)."""

    def __init__(self, drop_prob: float = 0.) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0. or not self.training:
            return x
        keep_prob = 1 - self.drop_prob
        keep = x.new_empty((x.shape[0], ) + (1, ) * (x.dim() - 1)).bernoulli_(keep_prob)
        return x * keep / keep_prob

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class PatchEmbed(nn.Module):
    """Non-overlapping P x P patches, linearly projected by a strided conv (BEiT Sec. 2.1.1, 2.2)."""

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [B, C, H, W]`` -> ``[B, N, D]``, N = (H/P)*(W/P) in row-major order."""
        return self.proj(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    """FFN(Y) = GELU(Y W1 + b1) W2 + b2 (the Transformer FFN of BEiT Sec. 2.2; official ``Mlp``)."""

    def __init__(self, embed_dims: int, feedforward_channels: int, drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, feedforward_channels)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(feedforward_channels, embed_dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class BEiTAttention(nn.Module):
    """Multi-head self-attention with q/v biases (no k bias) and an optional own relative
    position bias table (BEiT Sec. 2.2, 2.5).

    Args:
        embed_dims: D.
        num_heads: heads; D must be divisible by it.
        qv_bias: learnable ``q_bias`` and ``v_bias`` (the k bias is fixed at zero).
        grid: when given, this layer owns ``relative_position_bias_table`` for that patch
            grid (official fine-tuning: one table per layer).
        proj_drop: dropout after the output projection.
        attn_impl: form of ``softmax(q k^T / sqrt(d) + bias) v``: ``'sdpa'``, ``'explicit'``
            or ``'auto'`` (per device, dtype and what autograd needs); see
            :mod:`beitlab.ops.attention`.
    """

    def __init__(self, embed_dims: int, num_heads: int, qv_bias: bool = True,
                 grid: Optional[Tuple[int, int]] = None, proj_drop: float = 0.,
                 attn_impl: str = 'auto') -> None:
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims={embed_dims} is not divisible by num_heads={num_heads}')
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f'attn_impl={attn_impl!r} is not one of {ATTN_IMPLS}')
        self.attn_impl = attn_impl
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=False)
        if qv_bias:
            self.q_bias = nn.Parameter(torch.zeros(embed_dims))
            self.v_bias = nn.Parameter(torch.zeros(embed_dims))
        else:
            self.q_bias, self.v_bias = None, None
        self.grid = to_2tuple_grid(grid) if grid is not None else None
        if self.grid is not None:
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros(num_relative_distance(self.grid), num_heads))
            self.register_buffer('relative_position_index',
                                 build_relative_position_index(self.grid), persistent=False)
        else:
            self.relative_position_bias_table = None
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def attn_bias(self, grid: Tuple[int, int], rel_pos_bias: Optional[Tensor],
                  num_tokens: int) -> Optional[Tensor]:
        """Sum of this layer's bias and the shared one: ``[heads, T, T]`` or None.

        Biases are built for (CLS + patches); without a CLS token the last T rows/columns
        (the patches) are used.
        """
        bias = None
        if self.relative_position_bias_table is not None:
            bias = relative_position_bias_for_grid(self.relative_position_bias_table,
                                                   self.relative_position_index, self.grid, grid)
        if rel_pos_bias is not None:
            bias = rel_pos_bias if bias is None else bias + rel_pos_bias
        if bias is not None and bias.shape[-1] != num_tokens:
            bias = bias[:, -num_tokens:, -num_tokens:]
        return bias

    def forward(self, x: Tensor, grid: Tuple[int, int],
                rel_pos_bias: Optional[Tensor] = None,
                query_index: Optional[Tensor] = None) -> Tensor:
        """``x: [B, T, D]``, ``rel_pos_bias: [heads, T', T']`` (shared) -> ``[B, T, D]``.

        With ``query_index`` ``[B, Q]`` (token positions), only those tokens query: keys
        and values still come from all T tokens, the output is ``[B, Q, D]``.
        """
        b, t, d = x.shape
        qkv_bias = None
        if self.q_bias is not None:
            qkv_bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        bias = self.attn_bias(grid, rel_pos_bias, t)
        if bias is not None:
            bias = bias.to(x.dtype)
        if query_index is None:
            qkv = F.linear(x, self.qkv.weight, qkv_bias)
            q, k, v = qkv.reshape(b, t, 3, self.num_heads, self.head_dims).permute(2, 0, 3, 1, 4)
            if bias is not None and bias.dim() == 3:
                # [heads, T, T] -> [1, heads, T, T]: a 4-D mask lets CPU SDPA take its fused
                # kernel when the bias needs no gradient (measured -22 % attention time).
                bias = bias.unsqueeze(0)
        else:
            nq = query_index.shape[1]
            kv = F.linear(x, self.qkv.weight[d:], None if qkv_bias is None else qkv_bias[d:])
            k, v = kv.reshape(b, t, 2, self.num_heads, self.head_dims).permute(2, 0, 3, 1, 4)
            x_q = torch.gather(x, 1, query_index.unsqueeze(-1).expand(-1, -1, d))
            q = F.linear(x_q, self.qkv.weight[:d], None if qkv_bias is None else qkv_bias[:d])
            q = q.reshape(b, nq, self.num_heads, self.head_dims).transpose(1, 2)
            if bias is not None:  # the query rows of the bias: [B, heads, Q, T]
                bias = (bias if bias.dim() == 4 else bias.unsqueeze(0)).expand(b, -1, -1, -1)
                rows = query_index[:, None, :, None].expand(-1, bias.shape[1], -1, t)
                bias = torch.gather(bias, 2, rows)
            t = nq
        # softmax(q k^T / sqrt(d_k) + bias) v
        x = biased_attention(q, k, v, bias, self.attn_impl)
        x = x.transpose(1, 2).reshape(b, t, d)
        return self.proj_drop(self.proj(x))


class BEiTBlock(nn.Module):
    """Pre-LN Transformer layer with layer scale (CaiT) and stochastic depth:

    ``x = x + drop_path(gamma_1 * MHSA(LN(x)))``; ``x = x + drop_path(gamma_2 * FFN(LN(x)))``.
    """

    def __init__(self, embed_dims: int, num_heads: int, feedforward_channels: int,
                 qv_bias: bool = True, drop_rate: float = 0., drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 0.,
                 grid: Optional[Tuple[int, int]] = None, attn_impl: str = 'auto') -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=LN_EPS)
        self.attn = BEiTAttention(embed_dims, num_heads, qv_bias=qv_bias, grid=grid,
                                  proj_drop=drop_rate, attn_impl=attn_impl)
        self.drop_path = DropPath(drop_path_rate)
        self.norm2 = nn.LayerNorm(embed_dims, eps=LN_EPS)
        self.mlp = Mlp(embed_dims, feedforward_channels, drop=drop_rate)
        if layer_scale_init_value > 0:
            self.gamma_1 = nn.Parameter(layer_scale_init_value * torch.ones(embed_dims))
            self.gamma_2 = nn.Parameter(layer_scale_init_value * torch.ones(embed_dims))
        else:
            self.gamma_1, self.gamma_2 = None, None

    def forward(self, x: Tensor, grid: Tuple[int, int],
                rel_pos_bias: Optional[Tensor] = None,
                query_index: Optional[Tensor] = None) -> Tensor:
        """``x: [B, T, D]`` -> ``[B, T, D]``, or ``[B, Q, D]`` for the tokens at
        ``query_index`` ``[B, Q]`` only (they attend to all T tokens)."""
        y = self.attn(self.norm1(x), grid, rel_pos_bias, query_index)
        if query_index is not None:
            x = torch.gather(x, 1, query_index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = x + self.drop_path(y if self.gamma_1 is None else self.gamma_1 * y)
        y = self.mlp(self.norm2(x))
        return x + self.drop_path(y if self.gamma_2 is None else self.gamma_2 * y)
