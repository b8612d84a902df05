"""An optimizer wrapper that runs forward under ``torch.autocast`` on any device.

mmengine's ``AmpOptimWrapper`` asserts that a GPU (or NPU/MLU/MUSA) is present, so
it cannot give bfloat16 autocast to CPUs that support it (AVX512-BF16, AMX).
bfloat16 has float32's exponent range, so no loss scaling is needed and this
wrapper is a plain ``OptimWrapper`` plus an autocast context: parameters,
gradients and optimizer state stay float32 (mixed precision, not bf16 training).
"""
from contextlib import contextmanager
from typing import Iterator

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from beitlab.registry import OPTIM_WRAPPERS

__all__ = ['AutocastOptimWrapper']


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Mixed-precision ``OptimWrapper`` for bfloat16 on CPU or GPU, without a loss scaler.

    Args:
        dtype: autocast dtype, ``'bfloat16'`` (default) or ``'float16'`` (float16
            on GPU normally wants mmengine's ``AmpOptimWrapper`` and its scaler).
        enabled: ``False`` turns the wrapper into a plain ``OptimWrapper``, so a
            config can switch precision with one key.
        **kwargs: passed to ``OptimWrapper`` (``optimizer``, ``clip_grad``,
            ``accumulative_counts``).
    """

    valid_dtypes = ('bfloat16', 'float16')

    def __init__(self, dtype: str = 'bfloat16', enabled: bool = True, **kwargs) -> None:
        if dtype not in self.valid_dtypes:
            raise ValueError(f'AutocastOptimWrapper: dtype must be one of {self.valid_dtypes}, '
                             f'got {dtype!r}')
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype)
        self.enabled = enabled

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Gradient-accumulation context of ``OptimWrapper`` plus autocast on the
        device that holds ``model``'s parameters."""
        param = next(model.parameters(), None)
        device_type = param.device.type if param is not None else 'cpu'
        with super().optim_context(model), torch.autocast(
                device_type=device_type, dtype=self.cast_dtype, enabled=self.enabled):
            yield
