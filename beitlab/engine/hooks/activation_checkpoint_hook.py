"""Activation checkpointing of chosen submodules, switched on from a config (opt-in).

``custom_hooks = [dict(type='ActivationCheckpointHook', modules=['backbone.blocks'])]``
makes every transformer block drop its inner activations in the forward pass
and recompute them in the backward pass (``torch.utils.checkpoint``,
non-reentrant): less memory for about one extra forward of compute. Nothing in
the backbone changes; only the instance's ``forward`` is wrapped.
"""
import functools
from typing import Sequence

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn
from torch.utils.checkpoint import checkpoint

from beitlab.registry import HOOKS

__all__ = ['ActivationCheckpointHook', 'apply_activation_checkpointing']

_FLAG = '_beitlab_activation_checkpointed'


def _wrap_forward(module: nn.Module) -> None:
    if getattr(module, _FLAG, False):
        return
    forward = module.forward

    @functools.wraps(forward)
    def checkpointed_forward(*args, **kwargs):
        # Only worth it (and only valid) when a backward pass will follow.
        if module.training and torch.is_grad_enabled():
            return checkpoint(forward, *args, use_reentrant=False, **kwargs)
        return forward(*args, **kwargs)

    module.forward = checkpointed_forward
    setattr(module, _FLAG, True)


def apply_activation_checkpointing(model: nn.Module, modules: Sequence[str]) -> int:
    """Checkpoint each submodule named in ``modules``; return how many were wrapped.

    A name that points at a ``ModuleList``/``Sequential`` (``'backbone.blocks'``)
    checkpoints each of its children separately (one segment per block).
    """
    if is_model_wrapper(model):
        model = model.module
    wrapped = 0
    for name in modules:
        try:
            sub = model.get_submodule(name)
        except AttributeError as e:
            raise KeyError(f'ActivationCheckpointHook: model {type(model).__name__} has no '
                           f'submodule {name!r}') from e
        targets = list(sub.children()) if isinstance(sub, (nn.ModuleList, nn.Sequential)) \
            else [sub]
        for t in targets:
            _wrap_forward(t)
            wrapped += 1
    return wrapped


@HOOKS.register_module()
class ActivationCheckpointHook(Hook):
    """Wrap the forward of the named submodules with ``torch.utils.checkpoint``.

    Args:
        modules: dotted submodule paths; a container is expanded to its children.
    """

    priority = 'VERY_HIGH'

    def __init__(self, modules: Sequence[str] = ('backbone.blocks', )) -> None:
        if isinstance(modules, str):
            modules = [modules]
        self.modules = list(modules)

    def apply(self, model: nn.Module) -> int:
        """Wrap the submodules of ``model``; also used by the benchmark tool."""
        return apply_activation_checkpointing(model, self.modules)

    def before_run(self, runner) -> None:
        self.apply(runner.model)
