"""Multi-scale feature pyramid from a plain ViT, for dense-prediction transfer.

BEiT (Bao et al., 2021), Sec. 3.2 "Semantic segmentation" and Appendix: a plain ViT has
one resolution (stride = patch size, 16 for BEiT-B/L); following SETR/XCiT, four
intermediate blocks are resampled to strides 4, 8, 16 and 32 so that an FPN-style decoder
(UPerNet, Mask R-CNN's FPN) can consume them:

- level 0: 2x transposed conv -> norm -> GELU -> 2x transposed conv   (stride P/4)
- level 1: 2x transposed conv                                          (stride P/2)
- level 2: identity                                                     (stride P)
- level 3: 2x2 max-pool                                                 (stride 2P)
"""
from typing import Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import nn

from beitlab.registry import MODELS

__all__ = ['ViTMultiScaleNeck']


@MODELS.register_module()
class ViTMultiScaleNeck(BaseModule):
    """Resample four same-stride ViT feature maps to strides x4, x2, x1 and x0.5 of it.

    BEiT Sec. 3.2 / Appendix (semantic segmentation with UPerNet); the official code's
    ``fpn1..fpn4``. With patch size 16 the outputs have strides 4, 8, 16, 32.

    Args:
        embed_dims: channels of every input map (and of every output map).
        norm_cfg: norm between the two transposed convolutions of level 0; ``BN`` runs on a
            CPU, ``SyncBN`` is what the official multi-GPU recipe uses.
        init_cfg: mmengine init config.
    """

    num_levels = 4

    def __init__(self, embed_dims: int = 768, norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        norm_cfg = dict(type='BN', requires_grad=True) if norm_cfg is None else norm_cfg
        self.embed_dims = embed_dims
        self.upsample_4x = nn.Sequential(
            nn.ConvTranspose2d(embed_dims, embed_dims, kernel_size=2, stride=2),
            build_norm_layer(norm_cfg, embed_dims)[1],
            nn.GELU(),
            nn.ConvTranspose2d(embed_dims, embed_dims, kernel_size=2, stride=2),
        )
        self.upsample_2x = nn.ConvTranspose2d(embed_dims, embed_dims, kernel_size=2, stride=2)
        self.identity = nn.Identity()
        self.downsample_2x = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """``inputs``: 4 maps ``[B, D, h, w]`` -> ``([B, D, 4h, 4w], [B, D, 2h, 2w],
        [B, D, h, w], [B, D, h/2, w/2])``."""
        if len(inputs) != self.num_levels:
            raise ValueError(f'ViTMultiScaleNeck expects {self.num_levels} feature maps (one per '
                             f'backbone out_indices entry), got {len(inputs)}')
        for i, x in enumerate(inputs):
            if x.dim() != 4 or x.shape[1] != self.embed_dims:
                raise ValueError(f'ViTMultiScaleNeck input {i} has shape {tuple(x.shape)}, '
                                 f'expected [B, {self.embed_dims}, h, w] (backbone '
                                 "out_type='featmap')")
        ops = (self.upsample_4x, self.upsample_2x, self.identity, self.downsample_2x)
        return tuple(op(x) for op, x in zip(ops, inputs))
