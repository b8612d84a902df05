"""Let one object decide, just before each optimizer step, whether the step is applied.

mmengine's ``OptimWrapper.update_params`` runs ``backward``, ``step`` (clip, then
``optimizer.step``) and ``zero_grad`` inside ``model.train_step``; a hook sees the iteration
only after the parameters have moved. Skipping a non-finite step therefore needs the
wrapper's cooperation. This module gives it with the least surface:

- :class:`StepGuardMixin` changes only *measuring* and *executing*: ``update_params`` notes
  whether the loss is finite (a tensor, no synchronisation; with gradient accumulation over
  every micro-batch of the step), and ``step`` computes the total gradient norm (the number
  mmengine's ``clip_grad`` computes anyway, so clipping configs pay nothing extra; others pay
  one fused norm over the gradients), then asks its ``step_guard`` and either applies the
  step (clipping with that same norm, logging ``train/grad_norm`` as mmengine does) or skips
  it (``optimizer.step`` not called, gradients set to None). It decides nothing.
- the **guard** -- :class:`~beitlab.engine.hooks.nonfinite_guard_hook.NonFiniteGuardHook` --
  is a callable ``guard(optim_wrapper, loss_finite: Tensor[bool], grad_norm: Tensor | None)
  -> bool`` and the one place that decides (and counts, logs, stops or rolls back).
- :func:`install_step_guard` puts the mixin in front of the class of the wrapper the config
  built (``OptimWrapper``, beitlab's ``AutocastOptimWrapper``, mmengine's
  ``AmpOptimWrapper`` ...), on that instance only, so a config adds the hook and nothing
  else; ``isinstance`` checks, ``state_dict`` and checkpoints are unchanged. Without a guard
  the wrapper behaves exactly like its original class.

With ``AmpOptimWrapper`` the guard gets ``grad_norm=None``: float16 gradients overflow by
design while the loss scale settles, and the loss scaler already skips those steps.
"""
from typing import Callable, Dict, Optional, Type

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict
from torch import Tensor

__all__ = ['StepGuardMixin', 'StepGuard', 'install_step_guard', 'remove_step_guard']

StepGuard = Callable[[OptimWrapper, Tensor, Optional[Tensor]], bool]


class StepGuardMixin:
    """Measure the loss and the gradient norm and let ``step_guard`` decide each step
    (see the module docstring). Mixed in by :func:`install_step_guard`."""

    step_guard: Optional[StepGuard] = None
    pending_loss_finite: Optional[Tensor] = None

    def update_params(self, loss: Tensor, step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        finite = torch.isfinite(loss.detach()).all()
        pending = self.pending_loss_finite
        self.pending_loss_finite = finite if pending is None else pending & finite
        super().update_params(loss, step_kwargs, zero_kwargs)  # type: ignore[misc]

    def _guarded_params(self) -> list:
        return [p for group in self.optimizer.param_groups for p in group['params']
                if p.requires_grad and p.grad is not None]

    def _skip(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, **kwargs) -> None:
        guard = self.step_guard
        loss_finite = self.pending_loss_finite
        self.pending_loss_finite = None
        if guard is None:
            return super().step(**kwargs)  # type: ignore[misc]
        if loss_finite is None:  # step() called without update_params()
            loss_finite = torch.tensor(True)
        if isinstance(self, AmpOptimWrapper):
            if guard(self, loss_finite, None):
                super().step(**kwargs)  # type: ignore[misc]
            else:
                self._skip()
            return None
        params = self._guarded_params()
        clip = dict(self.clip_grad_kwargs or {})
        by_norm = bool(clip) and self.grad_name == 'grad_norm'
        grads = [p.grad for p in params]
        norm = torch.nn.utils.get_total_norm(
            grads, norm_type=clip.get('norm_type', 2.0) if by_norm else 2.0,
            error_if_nonfinite=False, foreach=clip.get('foreach'))
        if not guard(self, loss_finite, norm):
            self._skip()
            return None
        if by_norm and params:
            # what torch.nn.utils.clip_grad_norm_ does after computing this norm
            torch.nn.utils.clip_grads_with_norm_(params, clip['max_norm'], norm,
                                                 foreach=clip.get('foreach'))
            self.message_hub.update_scalar(f'train/{self.grad_name}', float(norm))
        elif clip and params:
            self.clip_func(params, **clip)
        self.optimizer.step(**kwargs)
        return None


_GUARDED: Dict[type, type] = {}


def _guarded_class(cls: Type[OptimWrapper]) -> type:
    if cls not in _GUARDED:
        name = f'StepGuarded{cls.__name__}'
        guarded = type(name, (StepGuardMixin, cls), {
            '__doc__': f'``{cls.__name__}`` whose steps a step guard decides '
                       f'(:mod:`{__name__}`).',
            '__module__': __name__,
        })
        globals()[name] = guarded   # importable by name, so the wrapper still pickles
        _GUARDED[cls] = guarded
    return _GUARDED[cls]


def install_step_guard(optim_wrapper: OptimWrapper, guard: StepGuard) -> OptimWrapper:
    """Make ``optim_wrapper`` ask ``guard`` before each step (in place; returns it).

    Raises:
        TypeError: an ``OptimWrapperDict`` (several optimizers: guard each wrapper in it),
            not an mmengine ``OptimWrapper``, or a wrapper class with its own ``step`` other
            than ``AmpOptimWrapper`` (its step would be bypassed).
    """
    if isinstance(optim_wrapper, OptimWrapperDict):
        raise TypeError('install_step_guard: an OptimWrapperDict holds several wrappers; '
                        'install the guard on each of them')
    if not isinstance(optim_wrapper, OptimWrapper):
        raise TypeError(f'install_step_guard needs an mmengine OptimWrapper, got '
                        f'{type(optim_wrapper).__name__}')
    cls = type(optim_wrapper)
    if not isinstance(optim_wrapper, (StepGuardMixin, AmpOptimWrapper)) and \
            cls.step is not OptimWrapper.step:
        raise TypeError(f'install_step_guard: {cls.__name__} overrides step(), which the guard '
                        'replaces; only wrappers with OptimWrapper.step (OptimWrapper, '
                        'AutocastOptimWrapper) or AmpOptimWrapper are supported')
    if not isinstance(optim_wrapper, StepGuardMixin):
        optim_wrapper.__class__ = _guarded_class(type(optim_wrapper))
    optim_wrapper.step_guard = guard
    optim_wrapper.pending_loss_finite = None
    return optim_wrapper


def remove_step_guard(optim_wrapper: OptimWrapper) -> OptimWrapper:
    """Undo :func:`install_step_guard` (the wrapper gets its original class back)."""
    if isinstance(optim_wrapper, StepGuardMixin):
        original = next(c for c in type(optim_wrapper).__mro__[1:]
                        if not issubclass(c, StepGuardMixin))
        optim_wrapper.__class__ = original
        optim_wrapper.__dict__.pop('step_guard', None)
        optim_wrapper.__dict__.pop('pending_loss_finite', None)
    return optim_wrapper
