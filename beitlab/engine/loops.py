"""Training loops."""
import time
from typing import Any, Iterator, Optional

from mmengine.runner import IterBasedTrainLoop
from torch.utils.data import DataLoader

from beitlab.registry import LOOPS

__all__ = ['PauselessIterBasedTrainLoop', 'EndlessDataloaderIterator']


class EndlessDataloaderIterator:
    """Batches of ``dataloader``, pass after pass, with ``set_epoch(pass)`` on its sampler
    before each new pass: the order of mmengine's ``IterBasedTrainLoop``.

    mmengine's iterator sleeps 2 s before every new pass, against a deadlock while the
    worker processes of the finished pass shut down. A loader that starts no new workers for
    a pass (``num_workers=0`` or ``persistent_workers=True``) cannot meet that, so this one
    pauses only for a loader that does. With a small dataset the pause is most of the run:
    600 images at batch 64 are a pass every 10 steps, 0.2 s per step.
    """

    pause_s = 2.0

    def __init__(self, dataloader: DataLoader, first_pass: Optional[Iterator] = None) -> None:
        """``first_pass``: an iterator over ``dataloader`` already started (by default a new
        one is). A second ``iter()`` on a loader with persistent workers would restart the
        workers' pass after they had drawn random augmentations for the batches they
        prefetched, so every later batch would differ from mmengine's."""
        self._dataloader = dataloader
        self._iterator = iter(dataloader) if first_pass is None else first_pass
        self._epoch = 0

    def __iter__(self) -> 'EndlessDataloaderIterator':
        return self

    def __next__(self) -> Any:
        try:
            return next(self._iterator)
        except StopIteration:
            pass
        self._epoch += 1
        loader = self._dataloader
        sampler = getattr(loader, 'sampler', None)
        if not hasattr(sampler, 'set_epoch'):
            sampler = getattr(getattr(loader, 'batch_sampler', None), 'sampler', None)
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(self._epoch)
        if getattr(loader, 'num_workers', 0) > 0 and not getattr(loader, 'persistent_workers', False):
            time.sleep(self.pause_s)
        self._iterator = iter(loader)
        return next(self._iterator)


@LOOPS.register_module()
class PauselessIterBasedTrainLoop(IterBasedTrainLoop):
    """mmengine's ``IterBasedTrainLoop`` (same arguments, same batches in the same order)
    without the 2 s pause at the end of every pass over the data where the loader's workers
    persist or there are none (:class:`EndlessDataloaderIterator`).

    ``train_cfg = dict(type='PauselessIterBasedTrainLoop', max_iters=..., val_interval=...)``
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # take over the pass mmengine's iterator has started (see EndlessDataloaderIterator)
        first_pass = getattr(self.dataloader_iterator, '_iterator', None)
        if first_pass is None:
            raise RuntimeError(
                f'PauselessIterBasedTrainLoop: mmengine\'s {type(self.dataloader_iterator).__name__} '
                'has no `_iterator` (a different mmengine version?); use '
                "train_cfg.type='IterBasedTrainLoop'")
        self.dataloader_iterator = EndlessDataloaderIterator(self.dataloader, first_pass)
