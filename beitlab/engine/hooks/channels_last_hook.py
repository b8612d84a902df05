"""Run chosen convolutional submodules in channels-last memory format (opt-in).

``custom_hooks = [dict(type='ChannelsLastHook', modules=['target_generator'])]``
stores the weights of the frozen tokenizer as NHWC and hands it NHWC inputs, so
oneDNN (CPU) and cuDNN (GPU) convolutions skip their layout reorders; it pays
most together with the tokenizer's bf16 option (see ``docs/performance.md``).
Values, parameter names and state dicts are unchanged.
"""
import functools

import torch
from mmengine.hooks import Hook
from torch import nn

from beitlab.registry import HOOKS

from .module_targets import ModuleSpec, normalize_module_spec, resolve_module_targets

__all__ = ['ChannelsLastHook', 'apply_channels_last']

_FLAG = '_beitlab_channels_last'


def _to_channels_last(x):
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _convert(module: nn.Module) -> bool:
    """Channels-last weights and a forward that converts its 4-D tensor arguments, once;
    ``False`` when ``module`` already was converted."""
    if getattr(module, _FLAG, False):
        return False
    module.to(memory_format=torch.channels_last)
    forward = module.forward

    @functools.wraps(forward)
    def channels_last_forward(*args, **kwargs):
        args = tuple(_to_channels_last(a) for a in args)
        kwargs = {k: _to_channels_last(v) for k, v in kwargs.items()}
        return forward(*args, **kwargs)

    module.forward = channels_last_forward
    setattr(module, _FLAG, True)
    return True


def apply_channels_last(model: nn.Module, modules: ModuleSpec) -> int:
    """Convert each submodule that ``modules`` names to channels-last (weights and 4-D
    tensor arguments); return how many were converted now.

    Targets are resolved by :func:`~beitlab.engine.hooks.module_targets.resolve_module_targets`
    (a container stands for its children). A module already converted is not counted again.
    """
    done = 0
    for _, module in resolve_module_targets(model, modules, 'ChannelsLastHook'):
        done += _convert(module)
    return done


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Channels-last weights and inputs for the named submodules.

    Args:
        modules: a dotted submodule path or a list of them (default: the MIM target
            generator); a container is expanded to its children
            (:mod:`beitlab.engine.hooks.module_targets`).
    """

    priority = 'VERY_HIGH'

    def __init__(self, modules: ModuleSpec = ('target_generator', )) -> None:
        self.modules = normalize_module_spec(modules, 'ChannelsLastHook')

    def apply(self, model: nn.Module) -> int:
        """Convert the submodules of ``model``; also used by the benchmark tool."""
        return apply_channels_last(model, self.modules)

    def before_run(self, runner) -> None:
        self.apply(runner.model)
