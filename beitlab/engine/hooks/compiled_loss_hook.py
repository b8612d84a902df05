"""Compile BEiT's loss (backbone + head + cross-entropy) into one function before training.

``custom_hooks = [dict(type='beitlab.CompiledLossHook')]`` (the fast path adds it:
``fast_path = True``, ``beitlab/engine/fast_path.py``) replaces ``loss`` on the model
instance with :class:`~beitlab.engine.compiled_loss.CompiledMIMLoss`; parameters, state-dict
keys and checkpoints are unchanged. A model other than BEiT keeps its own loss (one log
line says so); a compile failure logs one warning naming the reason and trains eagerly.
"""
from typing import Optional

from mmengine.hooks import Hook
from torch import nn

from beitlab.engine.compiled_loss import CompiledMIMLoss, install_compiled_loss
from beitlab.registry import HOOKS

__all__ = ['CompiledLossHook']


@HOOKS.register_module()
class CompiledLossHook(Hook):
    """``torch.compile`` of the BEiT loss with static shapes, installed before the run.

    Args:
        backend: ``torch.compile`` backend (``'inductor'``; ``'eager'`` only traces).
        mode: ``torch.compile`` mode (None: the default).
    """

    priority = 'VERY_LOW'

    def __init__(self, backend: str = 'inductor', mode: Optional[str] = None) -> None:
        self.backend = backend
        self.mode = mode

    def apply(self, model: nn.Module) -> Optional[CompiledMIMLoss]:
        """Install the compiled loss on ``model`` (also used by the benchmark tool); None
        when the model is not covered."""
        return install_compiled_loss(model, backend=self.backend, mode=self.mode)

    def before_run(self, runner) -> None:
        self.apply(runner.model)
