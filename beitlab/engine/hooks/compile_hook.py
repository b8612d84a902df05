"""Compile a submodule of the model with ``torch.compile`` before training (opt-in).

``custom_hooks = [dict(type='CompileHook', target='backbone.blocks')]`` compiles each
Transformer block in place (``nn.Module.compile``), so state-dict keys, checkpoints and DDP
wrapping are unchanged (measurements in ``docs/performance.md``). Keep it off unless the
benchmark shows a gain on the machine at hand: the first iterations pay the compilation.
"""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from beitlab.registry import HOOKS

__all__ = ['CompileHook', 'compile_submodule']


def compile_submodule(model: nn.Module, target: str = 'backbone.blocks',
                      mode: Optional[str] = None, dynamic: Optional[bool] = False,
                      fullgraph: bool = False, backend: str = 'inductor') -> nn.Module:
    """Compile ``model.<target>`` in place and return it.

    Args:
        model: the algorithm (a model wrapper such as DDP is unwrapped).
        target: dotted path of the submodule, ``''`` for the whole model; a
            ``ModuleList`` (``backbone.blocks``) has each of its modules compiled, which
            covers every way a backbone runs its blocks (``forward``, ``forward_masked``).
        mode: ``torch.compile`` mode (``None``, ``'max-autotune'``, ...).
        dynamic: ``False`` specialises on the (fixed) training shapes.
        fullgraph: fail instead of falling back to eager on a graph break.
        backend: ``torch.compile`` backend (``'eager'`` only traces: for tests).
    """
    if is_model_wrapper(model):
        model = model.module
    try:
        sub = model.get_submodule(target) if target else model
    except AttributeError as e:
        raise KeyError(f'CompileHook: model {type(model).__name__} has no submodule '
                       f'{target!r}') from e
    kwargs = dict(dynamic=dynamic, fullgraph=fullgraph, backend=backend)
    if mode is not None:
        kwargs['mode'] = mode
    # A ModuleList has no forward of its own: each of its modules is compiled.
    for module in (sub if isinstance(sub, nn.ModuleList) else [sub]):
        module.compile(**kwargs)
    return sub


@HOOKS.register_module()
class CompileHook(Hook):
    """``torch.compile`` one submodule of the model in place before the run starts.

    Args:
        target: dotted path of the submodule (``'backbone.blocks'``: every block;
            ``''`` = whole model).
        mode, dynamic, fullgraph, backend: passed to ``torch.compile``.
    """

    priority = 'VERY_LOW'

    def __init__(self, target: str = 'backbone.blocks', mode: Optional[str] = None,
                 dynamic: Optional[bool] = False, fullgraph: bool = False,
                 backend: str = 'inductor') -> None:
        self.target = target
        self.backend = backend
        self.mode = mode
        self.dynamic = dynamic
        self.fullgraph = fullgraph

    def apply(self, model: nn.Module) -> nn.Module:
        """Compile the target submodule of ``model``; also used by the benchmark tool."""
        return compile_submodule(model, self.target, self.mode, self.dynamic, self.fullgraph,
                                 self.backend)

    def before_run(self, runner) -> None:
        self.apply(runner.model)
