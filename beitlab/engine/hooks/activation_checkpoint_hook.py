"""Activation checkpointing of chosen submodules, switched on from a config (opt-in).

``custom_hooks = [dict(type='ActivationCheckpointHook', modules=['backbone.blocks'])]``
makes every transformer block drop its inner activations in the forward pass
and recompute them in the backward pass (``torch.utils.checkpoint``,
non-reentrant): less memory for about one extra forward of compute. Nothing in
the backbone changes; only the instance's ``forward`` is wrapped.
"""
import functools

import torch
from mmengine.hooks import Hook
from torch import nn
from torch.utils.checkpoint import checkpoint

from beitlab.registry import HOOKS

from .module_targets import ModuleSpec, normalize_module_spec, resolve_module_targets

__all__ = ['ActivationCheckpointHook', 'apply_activation_checkpointing']

_FLAG = '_beitlab_activation_checkpointed'


def _wrap_forward(module: nn.Module) -> bool:
    """Wrap ``module.forward`` once; ``False`` when it already was."""
    if getattr(module, _FLAG, False):
        return False
    forward = module.forward

    @functools.wraps(forward)
    def checkpointed_forward(*args, **kwargs):
        # Only worth it (and only valid) when a backward pass will follow.
        if module.training and torch.is_grad_enabled():
            return checkpoint(forward, *args, use_reentrant=False, **kwargs)
        return forward(*args, **kwargs)

    module.forward = checkpointed_forward
    setattr(module, _FLAG, True)
    return True


def apply_activation_checkpointing(model: nn.Module, modules: ModuleSpec) -> int:
    """Checkpoint each submodule that ``modules`` names; return how many were wrapped now.

    Targets are resolved by :func:`~beitlab.engine.hooks.module_targets.resolve_module_targets`:
    a container (``'backbone.blocks'``) checkpoints each of its children separately (one
    segment per block). A module already wrapped is not counted again.
    """
    wrapped = 0
    for _, module in resolve_module_targets(model, modules, 'ActivationCheckpointHook'):
        wrapped += _wrap_forward(module)
    return wrapped


@HOOKS.register_module()
class ActivationCheckpointHook(Hook):
    """Wrap the forward of the named submodules with ``torch.utils.checkpoint``.

    Args:
        modules: a dotted submodule path or a list of them (``''`` = the whole model); a
            container is expanded to its children
            (:mod:`beitlab.engine.hooks.module_targets`).
    """

    priority = 'VERY_HIGH'

    def __init__(self, modules: ModuleSpec = ('backbone.blocks', )) -> None:
        self.modules = normalize_module_spec(modules, 'ActivationCheckpointHook')

    def apply(self, model: nn.Module) -> int:
        """Wrap the submodules of ``model``; also used by the benchmark tool."""
        return apply_activation_checkpointing(model, self.modules)

    def before_run(self, runner) -> None:
        self.apply(runner.model)
