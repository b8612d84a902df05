"""A toy model whose rank 1 stops answering after its first training step (loaded through
``custom_imports`` by ``tests/data/configs/toy_regression_stalling_rank.py``)."""
import os
import time

from beitlab.registry import MODELS
from tests.toy_components import ToyRegressor


@MODELS.register_module()
class StallingToyRegressor(ToyRegressor):
    """``ToyRegressor`` that sleeps for an hour in rank 1's second forward, as a stuck data
    loader or a hung file system would: rank 0 then waits in DDP's gradient all-reduce."""

    forward_calls = 0

    def forward(self, *args, **kwargs):
        type(self).forward_calls += 1
        if os.environ.get('RANK') == '1' and type(self).forward_calls >= 2:
            time.sleep(3600)
        return super().forward(*args, **kwargs)
