"""Data preprocessor for image classification: normalise, stack, and mix batches in training."""
from typing import Optional, Sequence

import torch
from mmengine.model import ImgDataPreprocessor

from beitlab.models.data_preprocessors.mixup_cutmix import MixupCutmix
from beitlab.registry import MODELS

__all__ = ['ClsDataPreprocessor']


@MODELS.register_module()
class ClsDataPreprocessor(ImgDataPreprocessor):
    """mmengine's ``ImgDataPreprocessor`` (mean/std, BGR->RGB, stacking) plus Mixup/CutMix.

    In training with ``mixup`` set, labels become mixed soft targets stored in each data
    sample as ``gt_score [C]`` (the head's loss then uses them); evaluation is untouched.

    Args:
        mean, std: per-channel normalisation, in the channel order after ``to_rgb``.
        to_rgb: flip BGR (mmcv decoding) to RGB.
        num_classes: C for one-hot targets (needed with ``mixup``).
        mixup: keyword arguments of :class:`MixupCutmix` (without ``num_classes``), e.g.
            ``dict(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, prob=1.0)``; None disables.
    """

    def __init__(self, mean: Optional[Sequence[float]] = (123.675, 116.28, 103.53),
                 std: Optional[Sequence[float]] = (58.395, 57.12, 57.375), to_rgb: bool = True,
                 num_classes: Optional[int] = None, mixup: Optional[dict] = None,
                 pad_size_divisor: int = 1, pad_value: float = 0) -> None:
        super().__init__(mean=mean, std=std, bgr_to_rgb=to_rgb, pad_size_divisor=pad_size_divisor,
                         pad_value=pad_value)
        if mixup is not None and num_classes is None:
            raise ValueError('ClsDataPreprocessor: mixup needs num_classes')
        self.mixup = MixupCutmix(num_classes, **mixup) if mixup is not None else None

    def forward(self, data: dict, training: bool = False) -> dict:
        """``data['inputs']``: list of ``[C, H, W] uint8`` -> ``[B, C, H, W]`` float normalised."""
        data = super().forward(data, training)
        samples = data.get('data_samples')
        if training and self.mixup is not None and samples:
            labels = torch.cat([s.gt_label.reshape(-1) for s in samples]).to(data['inputs'].device)
            data['inputs'], scores = self.mixup(data['inputs'], labels)
            for sample, score in zip(samples, scores):
                sample.set_field(score, 'gt_score')
        return data
