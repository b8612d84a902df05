"""Report, at the end of every epoch, how many corrupt images the data pipelines skipped."""
from typing import Iterator, Optional

from mmengine.hooks import Hook

from beitlab.registry import HOOKS

__all__ = ['CorruptImageReportHook']


def _skip_counters(dataloader) -> Iterator:
    """Transforms with a ``reset_num_skipped`` method in a loader's dataset pipeline."""
    dataset = getattr(dataloader, 'dataset', None)
    while dataset is not None:
        pipeline = getattr(dataset, 'pipeline', None)
        for transform in getattr(pipeline, 'transforms', []) or []:
            if hasattr(transform, 'reset_num_skipped'):
                yield transform
        # wrappers (RepeatDataset, ConcatDataset's first part) keep the real one inside
        dataset = getattr(dataset, 'dataset', None) or \
            (getattr(dataset, 'datasets', None) or [None])[0]


@HOOKS.register_module()
class CorruptImageReportHook(Hook):
    """Log the number of images ``LoadImageChecked(skip_corrupt=True)`` skipped per epoch.

    Each skipped file is already named in a warning when it is met; this hook gives the
    total for the epoch (train and val) and resets the counter.
    """

    priority = 'LOW'

    def _report(self, runner, dataloader, phase: str) -> int:
        total = sum(t.reset_num_skipped() for t in _skip_counters(dataloader))
        if total:
            runner.logger.warning(f'{phase}: skipped {total} corrupt image(s) this epoch '
                                  '(each named in a warning above)')
        return total

    def after_train_epoch(self, runner) -> None:
        self._report(runner, runner.train_dataloader, f'epoch {runner.epoch} train')

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._report(runner, runner.val_dataloader, 'val')

    def after_test_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._report(runner, runner.test_dataloader, 'test')
