"""Compile submodules of the model with ``torch.compile`` before training (opt-in).

``custom_hooks = [dict(type='CompileHook', modules='backbone.blocks')]`` compiles each
Transformer block in place (``nn.Module.compile``), so state-dict keys, checkpoints and DDP
wrapping are unchanged (measurements in ``docs/performance.md``). Keep it off unless the
benchmark shows a gain on the machine at hand: the first iterations pay the compilation.
"""
from typing import Optional

from mmengine.hooks import Hook
from torch import nn

from beitlab.registry import HOOKS

from .module_targets import ModuleSpec, normalize_module_spec, resolve_module_targets

__all__ = ['CompileHook', 'compile_modules']


def compile_modules(model: nn.Module, modules: ModuleSpec = 'backbone.blocks',
                    mode: Optional[str] = None, dynamic: Optional[bool] = False,
                    fullgraph: bool = False, backend: str = 'inductor') -> int:
    """Compile each submodule that ``modules`` names in place; return how many.

    Args:
        model: the algorithm (a model wrapper such as DDP is unwrapped).
        modules: a dotted submodule path or a list of them, ``''`` for the whole model;
            a container (the ``ModuleList`` ``backbone.blocks``) has each of its children
            compiled, which covers every way a backbone runs its blocks (``forward``,
            ``forward_masked``). Resolved by
            :func:`~beitlab.engine.hooks.module_targets.resolve_module_targets`.
        mode: ``torch.compile`` mode (``None``, ``'max-autotune'``, ...).
        dynamic: ``False`` specialises on the (fixed) training shapes.
        fullgraph: fail instead of falling back to eager on a graph break.
        backend: ``torch.compile`` backend (``'eager'`` only traces: for tests).
    """
    kwargs = dict(dynamic=dynamic, fullgraph=fullgraph, backend=backend)
    if mode is not None:
        kwargs['mode'] = mode
    targets = resolve_module_targets(model, modules, 'CompileHook')
    for _, module in targets:
        module.compile(**kwargs)
    return len(targets)


@HOOKS.register_module()
class CompileHook(Hook):
    """``torch.compile`` submodules of the model in place before the run starts.

    Args:
        modules: a dotted submodule path or a list of them (``'backbone.blocks'``: every
            block; ``''`` = whole model); a container is expanded to its children
            (:mod:`beitlab.engine.hooks.module_targets`).
        mode, dynamic, fullgraph, backend: passed to ``torch.compile``.
    """

    priority = 'VERY_LOW'

    def __init__(self, modules: ModuleSpec = 'backbone.blocks', mode: Optional[str] = None,
                 dynamic: Optional[bool] = False, fullgraph: bool = False,
                 backend: str = 'inductor') -> None:
        self.modules = normalize_module_spec(modules, 'CompileHook')
        self.backend = backend
        self.mode = mode
        self.dynamic = dynamic
        self.fullgraph = fullgraph

    def apply(self, model: nn.Module) -> int:
        """Compile the target submodules of ``model``; also used by the benchmark tool."""
        return compile_modules(model, self.modules, self.mode, self.dynamic, self.fullgraph,
                               self.backend)

    def before_run(self, runner) -> None:
        self.apply(runner.model)
