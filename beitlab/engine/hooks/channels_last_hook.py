"""Run chosen convolutional submodules in channels-last memory format (opt-in).

``custom_hooks = [dict(type='ChannelsLastHook', modules=['target_generator'])]``
stores the weights of the frozen tokenizer as NHWC and hands it NHWC inputs, so
oneDNN (CPU) and cuDNN (GPU) convolutions skip their layout reorders; it pays
most together with the tokenizer's bf16 option (see ``docs/performance.md``).
Values, parameter names and state dicts are unchanged.
"""
import functools
from typing import Sequence

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from beitlab.registry import HOOKS

__all__ = ['ChannelsLastHook', 'apply_channels_last']

_FLAG = '_beitlab_channels_last'


def _to_channels_last(x):
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def apply_channels_last(model: nn.Module, modules: Sequence[str]) -> int:
    """Convert each named submodule to channels-last and wrap its forward so that its
    4-D tensor arguments are converted too; return how many were converted."""
    if is_model_wrapper(model):
        model = model.module
    done = 0
    for name in modules:
        try:
            sub = model.get_submodule(name)
        except AttributeError as e:
            raise KeyError(f'ChannelsLastHook: model {type(model).__name__} has no submodule '
                           f'{name!r}') from e
        if getattr(sub, _FLAG, False):
            continue
        sub.to(memory_format=torch.channels_last)
        forward = sub.forward

        @functools.wraps(forward)
        def channels_last_forward(*args, _forward=forward, **kwargs):
            args = tuple(_to_channels_last(a) for a in args)
            kwargs = {k: _to_channels_last(v) for k, v in kwargs.items()}
            return _forward(*args, **kwargs)

        sub.forward = channels_last_forward
        setattr(sub, _FLAG, True)
        done += 1
    return done


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Channels-last weights and inputs for the named submodules.

    Args:
        modules: dotted submodule paths (default: the MIM target generator).
    """

    priority = 'VERY_HIGH'

    def __init__(self, modules: Sequence[str] = ('target_generator', )) -> None:
        if isinstance(modules, str):
            modules = [modules]
        self.modules = list(modules)

    def apply(self, model: nn.Module) -> int:
        """Convert the submodules of ``model``; also used by the benchmark tool."""
        return apply_channels_last(model, self.modules)

    def before_run(self, runner) -> None:
        self.apply(runner.model)
