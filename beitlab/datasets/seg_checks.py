"""Checks for mmseg datasets: an empty set and label values outside the classes.

A label above ``num_classes - 1`` (other than the ignore index) is silently left out of
mmseg's ``IoUMetric`` and crashes training inside the loss (``Target 50 is out of
bounds``) without naming a file. :class:`SegLabelCheckMixin` checks every sample as it
is loaded, in training and testing, and names the label file and the bad values.
"""
import os.path as osp
from typing import Any, List, Optional, Sequence

import numpy as np

from beitlab.utils.cli import HintedError

from .image_folder import DataFolderNotFoundError

__all__ = ['EmptyDatasetError', 'SegLabelCheckMixin', 'check_seg_labels']


def _label_array(results: Any) -> Optional[np.ndarray]:
    """The label map of a pipeline's output: packed (``data_samples.gt_sem_seg``) or not
    (``gt_seg_map``); ``None`` when the pipeline loads no labels."""
    if not isinstance(results, dict):
        return None
    sample = results.get('data_samples')
    gt = getattr(sample, 'gt_sem_seg', None) if sample is not None else None
    if gt is not None:
        data = gt.data
        return data.cpu().numpy() if hasattr(data, 'cpu') else np.asarray(data)
    if results.get('gt_seg_map') is not None:
        return np.asarray(results['gt_seg_map'])
    return None


def check_seg_labels(labels: np.ndarray, num_classes: int, ignore_index: int,
                     seg_map_path: Optional[str], dataset: str = 'dataset') -> None:
    """Raise ``ValueError`` naming ``seg_map_path`` and the values when ``labels`` holds a
    value outside ``[0, num_classes)`` that is not ``ignore_index``."""
    bad = ((labels < 0) | (labels >= num_classes)) & (labels != ignore_index)
    if not bad.any():
        return
    values = np.unique(labels[bad])
    shown = ', '.join(str(int(v)) for v in values[:10]) + (', ...' if values.size > 10 else '')
    raise ValueError(
        f'label map {seg_map_path!r} holds values [{shown}] ({int(bad.sum())} pixels) outside '
        f'0..{num_classes - 1}: {dataset} has {num_classes} classes and ignore index '
        f'{ignore_index}; fix the label file, the class list (metainfo classes) or '
        f'reduce_zero_label')


class EmptyDatasetError(HintedError, ValueError):
    """A dataset found no sample; ``hints`` say where to point it."""


class SegLabelCheckMixin:
    """Put before an mmseg ``BaseSegDataset`` subclass in the bases:

    - ``load_data_list``: a missing image folder or a set without images is an error when
      the dataset is built, naming the data root, the folders and the annotation file;
    - ``prepare_data``: the label map that comes out of the pipeline (after
      ``LoadAnnotations``; flips, crops, resizes and padding with the ignore index add no
      other value) may only hold ``0..num_classes-1`` and the dataset's ``ignore_index``.

    ``data_hint`` (a class attribute, ``{root}`` replaced by the data root) is the command
    that creates the data, shown when it is missing.
    """

    data_hint: Optional[str] = None

    def load_data_list(self) -> List[dict]:
        img_dir = self.data_prefix.get('img_path', '') or self.data_root
        seg_dir = self.data_prefix.get('seg_map_path')
        name = type(self).__name__
        options = ' '.join(f'{k}_dataloader.dataset.data_root=/path/to/data'
                           for k in ('train', 'val', 'test'))
        hints = [f'point the config at your copy: `--cfg-options {options}`']
        if self.data_hint:
            hints.append(f'or create it: `{self.data_hint.format(root=self.data_root or "DIR")}`')
        if not (self.ann_file and osp.isfile(self.ann_file)) and not osp.isdir(img_dir):
            raise DataFolderNotFoundError(
                f'{name} image folder {img_dir!r} does not exist (data root '
                f'{self.data_root!r}); expected images *{self.img_suffix}'
                + (f' and their label maps in {seg_dir!r}' if seg_dir else '') + '.', hints)
        data_list = super().load_data_list()
        if not data_list:
            raise EmptyDatasetError(
                f'{name} is empty: no images *{self.img_suffix} under '
                f'{img_dir!r} (data root {self.data_root!r}, ann_file {self.ann_file!r}, label '
                f'maps {seg_dir!r}).', hints)
        return data_list

    def prepare_data(self, idx: int) -> Any:
        data_info = self.get_data_info(idx)
        seg_map_path = data_info.get('seg_map_path')
        results = self.pipeline(data_info)
        labels = _label_array(results)
        if labels is not None:
            classes: Sequence[str] = self.metainfo.get('classes') or ()
            check_seg_labels(labels, len(classes), self.ignore_index, seg_map_path,
                             type(self).__name__)
        return results
