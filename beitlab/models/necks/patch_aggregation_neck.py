"""BEiT v2's CLS-token patch aggregation (Peng et al. 2022, Sec. 2.3, Fig. 3).

To make the CLS token gather global information, the final layer's CLS token is
concatenated with the patch tokens of an intermediate layer l and fed to a shallow
(2-layer) Transformer; its output goes through the SAME MIM head and is trained
with the same masked-token loss. The bottleneck forces the CLS token to summarise
the image. The neck is dropped after pre-training.
"""
from typing import Optional, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from beitlab.models.backbones.beit_layers import BEiTBlock
from beitlab.registry import MODELS

__all__ = ['PatchAggregationNeck']


@MODELS.register_module()
class PatchAggregationNeck(BaseModule):
    """``[CLS_L; patches_l] -> num_layers BEiT blocks -> LayerNorm``.

    Args:
        embed_dims: backbone width D.
        num_heads: attention heads of the aggregation blocks.
        feedforward_channels: FFN width.
        num_layers: aggregation depth (2 in BEiT v2).
        layer_scale_init_value: layer scale of the blocks (0.1 in BEiT v2 ViT-B).
        init_cfg: mmengine init config.

    ``forward(early [B, 1+N, D], final [B, 1+N, D], grid, rel_pos_bias) -> [B, 1+N, D]``.
    The final tokens come after the backbone's final norm (beitlab's BEiT keeps it);
    official BEiT v2 takes the CLS before that norm, a difference the pre-LN blocks
    absorb.
    """

    def __init__(self, embed_dims: int = 768, num_heads: int = 12,
                 feedforward_channels: int = 3072, num_layers: int = 2,
                 layer_scale_init_value: float = 0.1, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.blocks = nn.ModuleList([
            BEiTBlock(embed_dims, num_heads, feedforward_channels,
                      layer_scale_init_value=layer_scale_init_value) for _ in range(num_layers)
        ])
        self.norm = nn.LayerNorm(embed_dims, eps=1e-6)

    def forward(self, early: Tensor, final: Tensor, grid: Tuple[int, int],
                rel_pos_bias: Optional[Tensor] = None) -> Tensor:
        if early.shape != final.shape:
            raise ValueError(f'PatchAggregationNeck: early tokens {tuple(early.shape)} and final '
                             f'tokens {tuple(final.shape)} must both be [B, 1+N, D]')
        x = torch.cat([final[:, :1], early[:, 1:]], dim=1)  # CLS of layer L, patches of layer l
        for block in self.blocks:
            x = block(x, grid, rel_pos_bias)
        return self.norm(x)
