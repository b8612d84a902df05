"""Run a block without moving the global random streams of a training run."""
import contextlib
import random
from typing import Iterator

import numpy as np
import torch

__all__ = ['preserved_random_state']


@contextlib.contextmanager
def preserved_random_state() -> Iterator[None]:
    """Put back the Python, numpy and torch (CPU, and CUDA when initialised) random states
    after the block, so that draws made inside it (trial masks, a monitor's data loader)
    leave a seeded run's data order and dropout unchanged."""
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and \
        torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
