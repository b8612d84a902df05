"""ViTDet-style simple feature pyramid over the last map of a plain ViT.

Li et al., "Exploring Plain Vision Transformer Backbones for Object Detection" (ViTDet),
Sec. 3 "Simple feature pyramid": from the single last-block map (stride P of the ViT, 16 for
BEiT-B) build strides 4/8/16/32 by deconvolution (x4, x2), identity (x1) and max-pooling
(x0.5), each followed by a 1x1 and a 3x3 conv with LayerNorm; an optional extra level
(stride 64) max-pools the coarsest output, as in Mask R-CNN's FPN ``P6``.
"""
import math
from typing import List, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from beitlab.registry import MODELS

__all__ = ['LayerNorm2d', 'SimpleFeaturePyramid']


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a ``[B, C, H, W]`` map (ViTDet's "LN")."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)


def _rescale_stage(channels: int, scale: float) -> Tuple[nn.Module, int]:
    """Resample by ``scale`` (a power of two): 2x2 deconvs up, 2x2 max-pools down.

    Returns the stage and its output channels (each deconv after the first halves them,
    as in ViTDet's x4 branch: D -> D/2 -> D/4).
    """
    steps = math.log2(scale)
    if steps != int(steps):
        raise ValueError(f'scale factor {scale} is not a power of two (expected e.g. 4, 2, 1, 0.5)')
    steps = int(steps)
    layers: List[nn.Module] = []
    out = channels
    for i in range(steps):
        nxt = max(out // 2, 1)
        layers.append(nn.ConvTranspose2d(out, nxt, kernel_size=2, stride=2))
        if i < steps - 1:
            layers += [LayerNorm2d(nxt), nn.GELU()]
        out = nxt
    layers += [nn.MaxPool2d(kernel_size=2, stride=2) for _ in range(-steps)]
    return (nn.Sequential(*layers) if layers else nn.Identity()), out


@MODELS.register_module()
class SimpleFeaturePyramid(nn.Module):
    """Build a feature pyramid from ONE stride-P ViT map (ViTDet, Sec. 3).

    Args:
        in_channels: channels D of the backbone map.
        out_channels: channels of every pyramid level (256 for mmdet's RPN/RoI heads).
        scale_factors: one per output level, relative to the input map; (4, 2, 1, 0.5)
            turns a stride-16 map into strides 4/8/16/32. With patch size 4 use
            (1, 0.5, 0.25, 0.125) for the same strides.
        num_outs: number of returned levels; each level past ``len(scale_factors)`` max-pools
            the previous one with stride 2 (the ``P6`` of Mask R-CNN).
        in_index: which backbone output to use when the backbone returns several.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 256,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
                 num_outs: int = 5,
                 in_index: int = -1) -> None:
        super().__init__()
        if num_outs < len(scale_factors):
            raise ValueError(f'num_outs={num_outs} is smaller than the {len(scale_factors)} '
                             f'scale_factors {tuple(scale_factors)}')
        self.in_index = in_index
        self.num_outs = num_outs
        self.stages = nn.ModuleList()
        for scale in scale_factors:
            rescale, channels = _rescale_stage(in_channels, float(scale))
            self.stages.append(nn.Sequential(
                rescale,
                nn.Conv2d(channels, out_channels, kernel_size=1, bias=False),
                LayerNorm2d(out_channels),
                nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
                LayerNorm2d(out_channels)))

    def forward(self, inputs: Union[Tensor, Sequence[Tensor]]) -> Tuple[Tensor, ...]:
        """``inputs``: a ``[B, D, H, W]`` map or a tuple of them -> ``num_outs`` maps, fine first."""
        x = inputs if isinstance(inputs, Tensor) else inputs[self.in_index]
        if x.dim() != 4:
            raise ValueError(f'SimpleFeaturePyramid expects a [B, D, H, W] map, got shape '
                             f'{tuple(x.shape)} (use out_type="featmap" in the backbone)')
        outs = [stage(x) for stage in self.stages]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)
