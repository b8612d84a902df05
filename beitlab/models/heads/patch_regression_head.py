"""Linear per-patch regression head of SimMIM and MaskFeat.

SimMIM (Xie et al., CVPR 2022, Sec. 3.3 "Prediction head", 3.4 "Prediction
target"): one linear layer maps each encoded patch token to its P*P*C raw pixels,
with an l1 loss on masked pixels (Eq. 1). MaskFeat (Wei et al., CVPR 2022,
Sec. 3.1): one linear layer predicts the HOG features of each masked patch with an
l2 loss. Both compute the loss on masked patches only.
"""
from typing import Dict

import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from beitlab.registry import MODELS

__all__ = ['PatchRegressionHead']


@MODELS.register_module()
class PatchRegressionHead(BaseModule):
    """``Linear(D -> C_target)`` per patch token, loss on the masked patches.

    Args:
        in_channels: token width D.
        out_channels: target width per patch (P*P*C for pixels, the HOG width for HOG).
        loss: ``'l1'`` (SimMIM) or ``'l2'`` (MaskFeat; mean squared error).
        init_cfg: mmengine init config.
    """

    LOSSES = ('l1', 'l2')

    def __init__(self, in_channels: int, out_channels: int, loss: str = 'l1',
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if loss not in self.LOSSES:
            raise ValueError(f'PatchRegressionHead: loss={loss!r} is not one of {self.LOSSES}')
        self.loss_type = loss
        self.out_channels = out_channels
        self.fc = nn.Linear(in_channels, out_channels)

    def forward(self, feats: Tensor) -> Tensor:
        """feats: patch tokens [B, N, D] -> prediction [B, N, out_channels]."""
        return self.fc(feats)

    def loss(self, feats: Tensor, target: Tensor, mask: Tensor) -> Dict[str, Tensor]:
        """feats: [B, N, D]; target: [B, N, C]; mask: [B, N] or [B, H/P, W/P] bool (True = masked).

        The loss is the mean of the elementwise l1 / squared error over the masked
        patches' values (SimMIM Eq. 1 divides by the number of masked pixels too).
        """
        pred = self.forward(feats)
        if pred.shape != target.shape:
            raise ValueError(f'PatchRegressionHead: prediction {tuple(pred.shape)} and target '
                             f'{tuple(target.shape)} differ (out_channels={self.out_channels})')
        m = mask.flatten(1).to(pred.dtype).unsqueeze(-1)  # [B, N, 1]
        if m.shape[1] != pred.shape[1]:
            raise ValueError(f'PatchRegressionHead: mask has {m.shape[1]} patches, the '
                             f'prediction {pred.shape[1]}')
        if self.loss_type == 'l1':
            err = F.l1_loss(pred, target, reduction='none')
        else:
            err = F.mse_loss(pred, target, reduction='none')
        denom = (m.sum() * pred.shape[-1]).clamp(min=1)
        return dict(loss=(err * m).sum() / denom)
