"""mmdet's COCO dataset and metric with the checks they lack: an annotation file without
annotations (or without images) is named instead of giving ``need at least one array to
concatenate`` or COCO APs of -1.

:func:`beitlab.utils.prepare_config` puts these classes in place of mmdet's ``CocoDataset``
and ``CocoMetric`` in every mmdet config (same arguments, same results otherwise):

- training set (``train_dataloader``): no annotation, or no image left after
  ``filter_cfg``, is a ``ValueError`` when the dataset is built;
- any set without images (validation and test included) is a ``ValueError`` when built;
- ``val_evaluator`` (validation during training): an annotation file without annotations
  is a ``ValueError`` when the metric is built, before the first iteration;
- ``test_evaluator``: a warning, and no COCO metrics at all (instead of every AP at -1);
  the predictions are still written when ``outfile_prefix`` is given.

The adapter (:mod:`beitlab.downstream.mmdet_adapter`) registers both into mmdet.
"""
import copy
from typing import Any, Dict, List, Optional

from mmdet.datasets import CocoDataset
from mmdet.evaluation.metrics import CocoMetric
from mmengine.logging import print_log

__all__ = ['CheckedCocoDataset', 'CheckedCocoMetric', 'use_checked_coco_types']

_EMPTY_GT_MODES = ('error', 'warn')


class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` that refuses an empty set when it is built.

    A training set (``test_mode=False``) whose annotation file holds no annotation, or
    keeps no image after ``filter_cfg``, and any set without images, raise ``ValueError``
    naming ``ann_file`` and ``data_root``. Everything else is ``CocoDataset``'s.
    """

    def filter_data(self) -> List[dict]:
        split = 'evaluation (test_mode=True)' if self.test_mode else 'training'
        where = f'(ann_file {self.ann_file!r}, data root {self.data_root!r})'
        num_images = len(self.data_list)
        num_instances = sum(len(info.get('instances', ())) for info in self.data_list)
        if num_images == 0:
            raise ValueError(f'COCO {split} set is empty: the annotation file lists no images '
                             f'{where}; point the dataloader\'s dataset.ann_file at a file with '
                             f'images')
        if not self.test_mode and num_instances == 0:
            raise ValueError(f'COCO training set has no annotations: {num_images} images and 0 '
                             f'annotations {where}; a detector cannot learn from it (an '
                             f'evaluation set needs test_mode=True)')
        kept = super().filter_data()
        if not kept:
            raise ValueError(f'COCO {split} set is empty after filter_cfg={self.filter_cfg}: '
                             f'none of its {num_images} images is kept {where}')
        return kept


class CheckedCocoMetric(CocoMetric):
    """mmdet's ``CocoMetric`` that does not report APs of an annotation file without
    annotations (COCOeval gives -1 for every one).

    Args:
        empty_gt: ``'error'`` (validation during training: ``ValueError`` when the metric is
            built, or when it first computes if the ground truth comes from the dataset) or
            ``'warn'`` (testing: a warning and an empty metrics dict).
        **kwargs: ``CocoMetric``'s arguments.
    """

    def __init__(self, empty_gt: str = 'error', **kwargs: Any) -> None:
        if empty_gt not in _EMPTY_GT_MODES:
            raise ValueError(f'CheckedCocoMetric: empty_gt={empty_gt!r}, expected one of '
                             f'{_EMPTY_GT_MODES}')
        super().__init__(**kwargs)
        self.empty_gt = empty_gt
        self.ann_file = kwargs.get('ann_file')
        if self._coco_api is not None and not self._coco_api.anns:
            self._report_empty(len(self._coco_api.imgs))

    def _message(self, num_images: int) -> str:
        source = (f'COCO annotation file {self.ann_file!r}' if self.ann_file
                  else 'the ground truth of the evaluation dataset')
        return (f'{source} holds {num_images} images and no annotations, so every COCO AP '
                f'would be -1')

    def _report_empty(self, num_images: int) -> None:
        if self.empty_gt == 'error':
            raise ValueError(f'val_evaluator: {self._message(num_images)}; give a validation '
                             f'file with annotations, or train without validation: '
                             f'--cfg-options val_cfg=None val_dataloader=None val_evaluator=None')
        print_log(f'test_evaluator: {self._message(num_images)}; no COCO metrics are '
                  f'reported for it', logger='current', level=30)  # logging.WARNING

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if self._coco_api is not None:
            empty, num_images = not self._coco_api.anns, len(self._coco_api.imgs)
        else:
            empty, num_images = not any(gt.get('anns') for gt, _ in results), len(results)
        if not empty:
            return super().compute_metrics(results)
        self._report_empty(num_images)  # again, next to where the metrics would be
        if self.outfile_prefix is not None:
            self.results2json([pred for _, pred in results], self.outfile_prefix)
        return {}


def _swap_dataset_type(dataset: Any) -> None:
    """``CocoDataset`` -> ``CheckedCocoDataset`` in a dataset config, wrappers included."""
    if isinstance(dataset, (list, tuple)):
        for item in dataset:
            _swap_dataset_type(item)
        return
    if not isinstance(dataset, dict):
        return
    if dataset.get('type') in ('CocoDataset', 'mmdet.CocoDataset'):
        dataset['type'] = dataset['type'].replace('CocoDataset', 'CheckedCocoDataset')
    for key in ('dataset', 'datasets'):  # RepeatDataset, ConcatDataset, ...
        if key in dataset:
            _swap_dataset_type(dataset[key])


def _checked_evaluator(evaluator: Any, empty_gt: str) -> Any:
    if isinstance(evaluator, (list, tuple)):
        return [_checked_evaluator(e, empty_gt) for e in evaluator]
    if isinstance(evaluator, dict):
        if evaluator.get('type') in ('CocoMetric', 'mmdet.CocoMetric'):
            evaluator = copy.deepcopy(evaluator)
            evaluator['type'] = evaluator['type'].replace('CocoMetric', 'CheckedCocoMetric')
            evaluator['empty_gt'] = empty_gt
        elif 'metrics' in evaluator:  # dict(type='Evaluator', metrics=[...])
            evaluator = copy.deepcopy(evaluator)
            evaluator['metrics'] = _checked_evaluator(evaluator['metrics'], empty_gt)
    return evaluator


def use_checked_coco_types(cfg: Any) -> None:
    """Put :class:`CheckedCocoDataset` / :class:`CheckedCocoMetric` in place of mmdet's
    ``CocoDataset`` / ``CocoMetric`` in ``cfg`` (``empty_gt='error'`` for
    ``val_evaluator``, ``'warn'`` for ``test_evaluator``) and register them into mmdet."""
    from . import mmdet_adapter  # noqa: F401  (registers the two classes)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader: Optional[dict] = cfg.get(key)
        if isinstance(loader, dict) and 'dataset' in loader:
            _swap_dataset_type(loader['dataset'])
    for key, mode in (('val_evaluator', 'error'), ('test_evaluator', 'warn')):
        if cfg.get(key) is not None:
            cfg[key] = _checked_evaluator(cfg[key], mode)
