"""Linear classification head for fine-tuning (BEiT Sec. 2.6).

``logits = H_L W_task + b_task`` where ``H_L`` is the backbone's CLS output
(``out_type='cls_token'``) or the mean of the patch tokens after ``fc_norm``
(``out_type='avg_featmap'``: the average pooling of BEiT Sec. 2.6, official
``use_mean_pooling``). The weight is truncated-normal
(std 0.02) and then, as official BEiT's ``init_scale``, weight and bias are multiplied by
0.001 so that fine-tuning starts from nearly uniform predictions.
"""
from typing import Optional, Sequence, Union

import torch
from mmengine.model import BaseModule
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from beitlab.registry import MODELS

__all__ = ['ClsHead']


@MODELS.register_module()
class ClsHead(BaseModule):
    """Dropout + linear layer over a pooled feature ``[B, D]``; soft-target cross-entropy loss.

    Args:
        num_classes: number of classes C.
        in_channels: feature size D.
        dropout_rate: dropout before the linear layer (0 disables it).
        init_scale: multiplies weight and bias after init (official BEiT: 0.001).
        loss: loss config or module, called as ``loss(logits [B, C], target)`` where target
            is ``[B] int64`` or ``[B, C]`` soft scores from Mixup/CutMix.

    Parameters are ``fc.weight [C, D]`` and ``fc.bias [C]`` (official layout: ``head.*``).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 64, dropout_rate: float = 0.0,
                 init_scale: float = 1e-3,
                 loss: Union[dict, nn.Module] = dict(type='SoftTargetCrossEntropyLoss'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes <= 0:
            raise ValueError(f'num_classes must be positive, got {num_classes}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.init_scale = init_scale
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes)
        self.loss_module = MODELS.build(loss) if isinstance(loss, dict) else loss
        self._init_fc()

    def _init_fc(self) -> None:
        nn.init.trunc_normal_(self.fc.weight, std=0.02)
        nn.init.zeros_(self.fc.bias)
        with torch.no_grad():
            self.fc.weight.mul_(self.init_scale)
            self.fc.bias.mul_(self.init_scale)

    def init_weights(self) -> None:
        """Truncated-normal weight, zero bias, both scaled by ``init_scale``."""
        if self.init_cfg is not None:
            super().init_weights()
        else:
            self._init_fc()

    def pre_logits(self, feats: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """The last backbone output ``[B, D]`` (a tuple from the backbone is accepted)."""
        feat = feats[-1] if isinstance(feats, (tuple, list)) else feats
        if feat.dim() != 2 or feat.shape[1] != self.in_channels:
            raise ValueError(f'ClsHead expects a pooled feature [B, {self.in_channels}] (backbone '
                             f"out_type 'cls_token' or 'avg_featmap'), got {tuple(feat.shape)}")
        return feat

    def forward(self, feats: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """-> logits ``[B, C]``."""
        return self.fc(self.dropout(self.pre_logits(feats)))

    def loss(self, feats: Union[Tensor, Sequence[Tensor]],
             data_samples: Sequence[BaseDataElement]) -> dict:
        """Cross-entropy against ``gt_score`` (mixed soft targets) if present, else ``gt_label``."""
        logits = self(feats)
        if 'gt_score' in data_samples[0]:
            target = torch.stack([s.gt_score for s in data_samples]).to(logits.device)
        else:
            target = torch.cat([s.gt_label.reshape(-1) for s in data_samples]).to(logits.device)
        losses = {'loss': self.loss_module(logits, target)}
        if target.dim() == 1:
            with torch.no_grad():
                losses['accuracy_top1'] = (logits.argmax(1) == target).float().mean() * 100
        return losses

    def predict(self, feats: Union[Tensor, Sequence[Tensor]],
                data_samples: Optional[Sequence[BaseDataElement]] = None
                ) -> Sequence[BaseDataElement]:
        """Adds ``pred_score [C]`` (softmax) and ``pred_label [1]`` to each data sample."""
        logits = self(feats)
        scores = torch.softmax(logits.float(), dim=1)
        labels = scores.argmax(dim=1, keepdim=True)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(logits.shape[0])]
        for sample, score, label in zip(data_samples, scores, labels):
            sample.set_field(score, 'pred_score')
            sample.set_field(label, 'pred_label')
        return data_samples
