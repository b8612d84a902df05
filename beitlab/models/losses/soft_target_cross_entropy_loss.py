"""Cross-entropy against soft targets, with optional label smoothing.

The fine-tuning loss of BEiT (Bao et al., 2021, Sec. 3.1 / App. "fine-tuning"): standard
cross-entropy with label smoothing 0.1, and against the mixed soft
targets that Mixup/CutMix produce.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beitlab.registry import MODELS

__all__ = ['SoftTargetCrossEntropyLoss', 'smooth_targets']


def smooth_targets(target: Tensor, num_classes: int, label_smoothing: float) -> Tensor:
    """Turn hard labels ``[B] int64`` or soft targets ``[B, C]`` into smoothed soft targets.

    ``y_smooth = (1 - eps) * y + eps / C``. Because this is linear in ``y``, smoothing a
    Mixup/CutMix mixture equals mixing smoothed one-hots (timm's order).

    Returns:
        ``[B, C]`` float, rows summing to 1.
    """
    if target.dim() == 1:
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
            raise ValueError(f'labels must lie in [0, {num_classes}), got min {int(target.min())} '
                             f'max {int(target.max())}')
        target = F.one_hot(target.long(), num_classes).float()
    elif target.dim() != 2 or target.shape[1] != num_classes:
        raise ValueError(f'targets must be [B] int64 labels or [B, {num_classes}] scores, '
                         f'got shape {tuple(target.shape)}')
    if label_smoothing > 0:
        target = target * (1.0 - label_smoothing) + label_smoothing / num_classes
    return target


@MODELS.register_module()
class SoftTargetCrossEntropyLoss(nn.Module):
    """``-sum_c y_c log softmax(logits)_c`` averaged over the batch.

    Args:
        label_smoothing: eps of ``y = (1 - eps) y + eps / C`` (0.1 in BEiT fine-tuning).
        loss_weight: multiplies the loss.
    """

    def __init__(self, label_smoothing: float = 0.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'label_smoothing must be in [0, 1), got {label_smoothing}')
        self.label_smoothing = label_smoothing
        self.loss_weight = loss_weight

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """``logits: [B, C]``, ``target: [B] int64 or [B, C] float`` -> scalar."""
        soft = smooth_targets(target.to(logits.device), logits.shape[1], self.label_smoothing)
        loss = torch.sum(-soft * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        return self.loss_weight * loss
