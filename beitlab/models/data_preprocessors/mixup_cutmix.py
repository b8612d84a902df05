"""Mixup and CutMix on a batch, as in BEiT's fine-tuning recipe (App. "fine-tuning", after DeiT).

Mixup (Zhang et al., 2018): ``x = lam x + (1 - lam) x_flipped``; CutMix (Yun et al., 2019):
a box of area ``(1 - lam) H W`` is pasted from the flipped batch and ``lam`` is corrected to
the exact pasted area. Targets are mixed with the same ``lam``. Per batch, one of the two is
chosen (CutMix with probability ``switch_prob``), and the whole thing happens with
probability ``prob`` (timm's ``Mixup`` in ``mode='batch'``).
"""
from typing import Optional, Tuple

import numpy as np
import torch.nn.functional as F
from torch import Tensor

__all__ = ['MixupCutmix']


class MixupCutmix:
    """Batch-level Mixup / CutMix switcher (official BEiT: 0.8 / 1.0, switch 0.5, prob 1.0).

    Args:
        num_classes: C, to turn labels into one-hot targets.
        mixup_alpha: Beta(alpha, alpha) for Mixup's lam (0 disables Mixup).
        cutmix_alpha: Beta(alpha, alpha) for CutMix's lam (0 disables CutMix).
        switch_prob: probability of CutMix when both are enabled.
        prob: probability of mixing a batch at all.
        seed: seed of the private generator (``None``: numpy's global state).
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0,
                 switch_prob: float = 0.5, prob: float = 1.0, seed: Optional[int] = None) -> None:
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f'alphas must be >= 0, got mixup {mixup_alpha}, cutmix {cutmix_alpha}')
        self.num_classes = num_classes
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.switch_prob = switch_prob
        self.prob = prob
        # numpy's global state follows mmengine's ``randomness.seed``; a seed gives a private one
        self.rng = np.random.RandomState(seed) if seed is not None else np.random

    def _cutmix_box(self, lam: float, h: int, w: int) -> Tuple[int, int, int, int]:
        cut_ratio = np.sqrt(1.0 - lam)
        cut_h, cut_w = int(h * cut_ratio), int(w * cut_ratio)
        cy, cx = int(self.rng.randint(0, h)), int(self.rng.randint(0, w))
        y0, y1 = np.clip(cy - cut_h // 2, 0, h), np.clip(cy + cut_h // 2, 0, h)
        x0, x1 = np.clip(cx - cut_w // 2, 0, w), np.clip(cx + cut_w // 2, 0, w)
        return int(y0), int(y1), int(x0), int(x1)

    def __call__(self, inputs: Tensor, labels: Tensor) -> Tuple[Tensor, Tensor]:
        """``inputs: [B, C, H, W]``, ``labels: [B] int64`` -> (mixed inputs, soft targets ``[B, C]``)."""
        target = F.one_hot(labels.long(), self.num_classes).float()
        use_mixup, use_cutmix = self.mixup_alpha > 0, self.cutmix_alpha > 0
        if (not use_mixup and not use_cutmix) or self.rng.random() >= self.prob:
            return inputs, target
        if use_mixup and use_cutmix:
            use_cutmix = self.rng.random() < self.switch_prob
            use_mixup = not use_cutmix
        flipped = inputs.flip(0)
        if use_cutmix:
            lam = float(self.rng.beta(self.cutmix_alpha, self.cutmix_alpha))
            h, w = inputs.shape[-2:]
            y0, y1, x0, x1 = self._cutmix_box(lam, h, w)
            inputs = inputs.clone()
            inputs[..., y0:y1, x0:x1] = flipped[..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
        else:
            lam = float(self.rng.beta(self.mixup_alpha, self.mixup_alpha))
            inputs = inputs * lam + flipped * (1.0 - lam)
        target = target * lam + target.flip(0) * (1.0 - lam)
        return inputs, target
