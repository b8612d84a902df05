"""PauselessIterBasedTrainLoop: mmengine's batches in mmengine's order, without its 2 s pause
between passes over the data unless the loader starts new workers for a pass. (That the loop
trains on exactly mmengine's batches is pinned in tests/test_registry_contracts.py.)"""
from typing import Iterator, List
from unittest import mock

import pytest

from beitlab.engine import loops
from beitlab.engine.loops import EndlessDataloaderIterator


class Sampler:
    def __init__(self) -> None:
        self.epochs: List[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


class Loader:
    """Two batches per pass, each pass's batches named by the sampler's epoch."""

    def __init__(self, num_workers: int = 0, persistent_workers: bool = False) -> None:
        self.sampler = Sampler()
        self.num_workers, self.persistent_workers = num_workers, persistent_workers

    def __iter__(self) -> Iterator[str]:
        epoch = self.sampler.epochs[-1] if self.sampler.epochs else 0
        return iter([f'e{epoch}b0', f'e{epoch}b1'])


@pytest.mark.parametrize('num_workers, persistent, pauses', [
    (0, False, 0), (2, True, 0), (2, False, 2)])
def test_pauses_only_where_the_loader_starts_new_workers(num_workers: int, persistent: bool,
                                                        pauses: int) -> None:
    loader = Loader(num_workers, persistent)
    with mock.patch.object(loops.time, 'sleep') as sleep:
        it = EndlessDataloaderIterator(loader)
        drawn = [next(it) for _ in range(6)]
    assert drawn == ['e0b0', 'e0b1', 'e1b0', 'e1b1', 'e2b0', 'e2b1']
    assert loader.sampler.epochs == [1, 2]
    assert sleep.call_count == pauses
    if pauses:
        sleep.assert_called_with(2.0)


def test_an_empty_loader_stops_instead_of_spinning() -> None:
    class Empty(Loader):
        def __iter__(self) -> Iterator[str]:
            return iter([])

    with pytest.raises(StopIteration):
        next(EndlessDataloaderIterator(Empty()))


class RandomItems:
    """Each item draws a number from numpy's global generator, as a random augmentation in a
    data worker does."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int):
        import numpy as np
        return index, float(np.random.rand())


def seed_worker(worker_id: int) -> None:
    import numpy as np
    np.random.seed(1234 + worker_id)


def test_the_loop_draws_mmengines_augmentations_with_persistent_workers() -> None:
    """The loop takes over the pass mmengine's iterator started instead of starting another:
    a second start would make the persistent worker draw augmentations for the batches it had
    prefetched, and every batch after would differ from mmengine's."""
    from types import SimpleNamespace

    import torch
    from mmengine.dataset import DefaultSampler
    from mmengine.runner.loops import _InfiniteDataloaderIterator
    from torch.utils.data import DataLoader

    from beitlab.engine.loops import PauselessIterBasedTrainLoop

    def draws(make) -> list:
        torch.manual_seed(0)
        items = RandomItems()
        loader = DataLoader(items, batch_size=4, sampler=DefaultSampler(items, seed=0), num_workers=1,
                            persistent_workers=True, worker_init_fn=seed_worker)
        with mock.patch('mmengine.runner.loops.time.sleep'):
            it = make(loader)
            return [(b[0].tolist(), b[1].tolist()) for b in (next(it) for _ in range(7))]

    def loop_iterator(loader):
        runner = SimpleNamespace(visualizer=SimpleNamespace())
        return PauselessIterBasedTrainLoop(runner, loader, max_iters=7).dataloader_iterator

    assert draws(loop_iterator) == draws(_InfiniteDataloaderIterator)
