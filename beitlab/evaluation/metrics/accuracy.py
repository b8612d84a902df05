"""Top-k classification accuracy (the ImageNet metric of BEiT Sec. 3.1).

``Top-k Acc = #{samples whose true class is among the k highest scores} / #samples``.

Ties: classes are ranked by score, highest first, and classes with EQUAL scores are ranked
by class index, lowest first (a stable sort). So top-k always contains exactly k classes and
the result does not depend on the hardware: with scores ``[0.5, 0.5, 0]`` and true class 1,
top-1 is wrong (class 0 ranks first) and top-2 is right.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.evaluator import BaseMetric
from torch import Tensor

from beitlab.registry import METRICS

__all__ = ['Accuracy', 'topk_correct']


def topk_correct(scores: Tensor, labels: Tensor, topk: Sequence[int]) -> Dict[int, Tensor]:
    """For each k, a ``[B] bool`` telling whether the label is among the top k classes.

    Args:
        scores: ``[B, C]`` float (logits or probabilities).
        labels: ``[B]`` int64 in ``[0, C)``.
    Raises:
        ValueError: a k larger than C, or labels outside ``[0, C)``.
    """
    if scores.dim() != 2:
        raise ValueError(f'scores must be [B, C], got shape {tuple(scores.shape)}')
    num_classes = scores.shape[1]
    for k in topk:
        if not 1 <= k <= num_classes:
            raise ValueError(f'top-{k} accuracy is undefined with {num_classes} classes: every k '
                             f'must be in [1, {num_classes}] (got topk={tuple(topk)})')
    labels = labels.reshape(-1).long()
    if labels.numel() != scores.shape[0]:
        raise ValueError(f'{labels.numel()} labels for {scores.shape[0]} score rows')
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f'labels must lie in [0, {num_classes}), got min {int(labels.min())} '
                         f'max {int(labels.max())}')
    # stable descending sort: equal scores keep class order, lowest index first
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices  # [B, C]
    rank = (order == labels[:, None]).float().argmax(dim=1)  # [B] position of the true class
    return {k: rank < k for k in topk}


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy in percent, optionally per-class top-1 accuracy (recall).

    Reads ``pred_score [C]`` (or ``pred_label``, top-1 only) and ``gt_label`` of each sample.
    Keys: ``accuracy/top{k}``; with ``per_class``, also ``accuracy/top1_class_{name}`` and
    ``accuracy/mean_class_top1``.

    Args:
        topk: the k values, each in ``[1, num_classes]`` (checked at compute time).
        per_class: add per-class top-1 accuracy.
        class_names: names used in per-class keys (default: class indices).
    """
    default_prefix: Optional[str] = 'accuracy'

    def __init__(self, topk: Union[int, Sequence[int]] = (1, 5), per_class: bool = False,
                 class_names: Optional[Sequence[str]] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk: Tuple[int, ...] = (topk,) if isinstance(topk, int) else tuple(topk)
        if not self.topk or any(int(k) != k or k < 1 for k in self.topk):
            raise ValueError(f'topk must be positive integers, got {topk!r}')
        self.per_class = per_class
        self.class_names = list(class_names) if class_names is not None else None

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep each sample's scores (or predicted label) and its true label."""
        for sample in data_samples:
            get = sample.get if isinstance(sample, dict) else (lambda k, s=sample: s.get(k))
            score, label = get('pred_score'), get('pred_label')
            gt = get('gt_label')
            if gt is None:
                raise KeyError('Accuracy: a data sample has no gt_label')
            self.results.append({
                'pred_score': None if score is None else score.detach().cpu().float(),
                'pred_label': None if label is None else torch.as_tensor(label).reshape(-1).cpu(),
                'gt_label': torch.as_tensor(gt).reshape(-1).cpu(),
            })

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Accuracies in percent over all processed samples."""
        labels = torch.cat([r['gt_label'] for r in results]).long()
        if all(r['pred_score'] is not None for r in results):
            scores = torch.stack([r['pred_score'] for r in results])
            correct = topk_correct(scores, labels, self.topk)
            num_classes = scores.shape[1]
        else:
            if self.topk != (1,):
                raise ValueError(f'Accuracy with topk={self.topk} needs pred_score in every sample; '
                                 'only pred_label was found (use topk=1)')
            preds = torch.cat([r['pred_label'] for r in results]).long()
            correct = {1: preds == labels}
            num_classes = int(max(labels.max(), preds.max())) + 1
        metrics = {f'top{k}': c.float().mean().item() * 100 for k, c in correct.items()}
        if self.per_class:
            names = self.class_names or [str(i) for i in range(num_classes)]
            if len(names) != num_classes:
                raise ValueError(f'{len(names)} class_names for {num_classes} classes')
            per_class = []
            for c, name in enumerate(names):
                sel = labels == c
                if sel.any():
                    acc = correct[1][sel].float().mean().item() * 100 if 1 in correct else \
                        topk_correct(scores[sel], labels[sel], (1,))[1].float().mean().item() * 100
                    metrics[f'top1_class_{name}'] = acc
                    per_class.append(acc)
            metrics['mean_class_top1'] = sum(per_class) / max(len(per_class), 1)
        return metrics
