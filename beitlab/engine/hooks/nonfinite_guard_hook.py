"""Skip optimizer steps whose loss or gradient norm is not finite; stop, or roll back, when
they keep coming.

Design (one place decides): before each optimizer step the wrapper asks this hook.
:func:`~beitlab.engine.optimizers.step_guard.install_step_guard` (called in ``before_train``)
makes the config's optim wrapper, whatever its class, measure two things it mostly computes
already -- whether the loss is finite and the total gradient norm (the one ``clip_grad``
computes) -- and hand them to :meth:`NonFiniteGuardHook.decide`. The hook answers apply or
skip; a skipped step does not call ``optimizer.step`` (no parameter, moment or step-count
update) and drops the gradients. Under DDP the answer is all-reduced (one int per step), so
every rank skips the same steps. The learning-rate schedule still advances on a skipped
iteration.

The hook then, after each iteration:

- counts skipped steps and logs the count as ``nonfinite/skipped`` (every log line), warns
  with the iteration and the values, and leaves the non-finite loss values of a skipped step
  out of the log (they would turn the smoothed loss into nan for a whole window);
- after ``max_consecutive`` skipped steps in a row raises :class:`NonFiniteTrainingError`
  naming the iteration, the last good checkpoint and the command that resumes from it;
- or, with ``rollback=True``, reloads that checkpoint itself (``runner.resume``: weights,
  optimizer, schedulers, iteration) before the next iteration and carries on. The data
  loader is not rewound, so the batches that produced the non-finite values are not seen
  again; at most ``max_rollbacks`` times, then the error.

A checkpoint is *good* when it was saved at the end of an iteration outside a run of skipped
steps. Optionally, every ``grad_norm_interval`` iterations, the gradient norm of each module
is logged as ``grad_norm/<module>`` (before clipping; modules as in :func:`module_groups`).
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from torch import Tensor, nn

from beitlab.engine.optimizers.step_guard import install_step_guard, remove_step_guard
from beitlab.registry import HOOKS
from beitlab.utils.cli import HintedError

__all__ = ['NonFiniteGuardHook', 'NonFiniteTrainingError', 'module_groups']


class NonFiniteTrainingError(HintedError, RuntimeError):
    """Training stopped after too many consecutive non-finite steps."""


def module_groups(named_params: Sequence[tuple], prefixes: Optional[Sequence[str]] = None
                  ) -> Dict[str, List[nn.Parameter]]:
    """Group parameters by module for per-module gradient norms.

    With ``prefixes``, a parameter joins the longest prefix its name starts with (others are
    left out). Otherwise the group is the module path up to its first numeric part
    (``backbone.blocks.3.attn.qkv.weight`` -> ``backbone.blocks.3``), else its first two
    parts (``backbone.patch_embed.proj.weight`` -> ``backbone.patch_embed``,
    ``head.fc.weight`` -> ``head.fc``, ``backbone.cls_token`` -> ``backbone``).
    """
    groups: Dict[str, List[nn.Parameter]] = {}
    ordered = sorted(prefixes or (), key=len, reverse=True)
    for name, param in named_params:
        if prefixes:
            key = next((p for p in ordered if name == p or name.startswith(p.rstrip('.') + '.')),
                       None)
            if key is None:
                continue
        else:
            parts = name.split('.')[:-1] or name.split('.')
            numeric = next((i for i, p in enumerate(parts) if p.isdigit()), None)
            key = '.'.join(parts[:numeric + 1] if numeric is not None else parts[:2])
        groups.setdefault(key, []).append(param)
    return groups


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Skip non-finite optimizer steps, count them, stop (or roll back) after a run of them.

    See the module docstring for the design. Add it as
    ``custom_hooks = [dict(type='NonFiniteGuardHook', max_consecutive=5)]``.

    Args:
        max_consecutive: skipped steps in a row that stop the run (or trigger a rollback).
        rollback: reload the last good checkpoint instead of stopping.
        max_rollbacks: rollbacks allowed in one run; one more run of skipped steps stops it.
        grad_norm_interval: log ``grad_norm/<module>`` every this many iterations (0: never).
        grad_norm_modules: module name prefixes for those norms (default: the rule of
            :func:`module_groups`).
        drop_nonfinite_logs: leave a skipped step's non-finite loss values out of the log.
    """

    # First among the hooks: in after_train_iter it edits the logged outputs before
    # RuntimeInfoHook records them, and in before_train_iter a rollback happens before the
    # other hooks see the iteration.
    priority = 'HIGHEST'

    def __init__(self, max_consecutive: int = 5, rollback: bool = False, max_rollbacks: int = 3,
                 grad_norm_interval: int = 0, grad_norm_modules: Optional[Sequence[str]] = None,
                 drop_nonfinite_logs: bool = True) -> None:
        if max_consecutive < 1:
            raise ValueError(f'NonFiniteGuardHook: max_consecutive={max_consecutive} must be >= 1')
        if max_rollbacks < 0 or grad_norm_interval < 0:
            raise ValueError(f'NonFiniteGuardHook: max_rollbacks={max_rollbacks} and '
                             f'grad_norm_interval={grad_norm_interval} must be >= 0')
        self.max_consecutive = int(max_consecutive)
        self.rollback = bool(rollback)
        self.max_rollbacks = int(max_rollbacks)
        self.grad_norm_interval = int(grad_norm_interval)
        self.grad_norm_modules = list(grad_norm_modules) if grad_norm_modules else None
        self.drop_nonfinite_logs = bool(drop_nonfinite_logs)
        self.skipped = 0
        self.consecutive = 0
        self.rollbacks = 0
        self.last_good_ckpt: Optional[str] = None
        self._seen_ckpt: Optional[str] = None
        self._decision: Optional[dict] = None
        self._module_norms: Optional[Dict[str, float]] = None
        self._rollback_to: Optional[str] = None
        self._runner = None

    # ------------------------------------------------------------------ the decision
    def decide(self, optim_wrapper: OptimWrapper, loss_finite: Tensor,
               grad_norm: Optional[Tensor]) -> bool:
        """The step guard: apply the step iff the loss and the gradient norm are finite (on
        every rank)."""
        ok = loss_finite.detach().bool().all()
        if grad_norm is not None:
            ok = ok & torch.isfinite(grad_norm.detach()).all()
        if is_distributed():
            flag = ok.to(torch.int32).reshape(1)
            if torch_dist.get_backend() == 'nccl':
                flag = flag.cuda()
            torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MIN)
            ok = flag[0]
        applied = bool(ok.item())
        self._decision = dict(applied=applied, loss_finite=bool(loss_finite.all().item()),
                              grad_norm=None if grad_norm is None else float(grad_norm))
        runner = self._runner
        if applied and self.grad_norm_interval and runner is not None and \
                (runner.iter + 1) % self.grad_norm_interval == 0:
            self._module_norms = self._per_module_norms(runner)
        return applied

    def _per_module_norms(self, runner) -> Dict[str, float]:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        named = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
        norms = {}
        for key, params in module_groups(named, self.grad_norm_modules).items():
            per = torch.stack([torch.linalg.vector_norm(p.grad.detach().float()) for p in params])
            norms[f'grad_norm/{key}'] = float(torch.linalg.vector_norm(per))
        return norms

    # ------------------------------------------------------------------ hook points
    def before_train(self, runner) -> None:
        install_step_guard(runner.optim_wrapper, self.decide)
        self._runner = runner
        self._seen_ckpt = runner.message_hub.get_info('last_ckpt')
        if runner.cfg.get('resume'):
            self.last_good_ckpt = runner.cfg.get('load_from') or self._pointer(runner)

    def after_train(self, runner) -> None:
        self._note_checkpoint(runner)
        remove_step_guard(runner.optim_wrapper)
        self._runner = None

    def _note_checkpoint(self, runner) -> None:
        """A checkpoint saved since the last call (at the end of the previous iteration,
        after this hook ran) is good when that iteration was outside a run of skipped steps."""
        ckpt = runner.message_hub.get_info('last_ckpt')
        if ckpt and ckpt != self._seen_ckpt:
            self._seen_ckpt = ckpt
            if self.consecutive == 0:
                self.last_good_ckpt = ckpt

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._note_checkpoint(runner)
        if self._rollback_to is not None:
            self._do_rollback(runner)
        self._decision = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        decision, self._decision = self._decision, None
        if decision is not None:
            if decision['applied']:
                self.consecutive = 0
            else:
                self._on_skipped(runner, decision, outputs)
        runner.message_hub.update_scalar('train/nonfinite/skipped', self.skipped)
        if self._module_norms:
            runner.visualizer.add_scalars(self._module_norms, step=runner.iter + 1,
                                          file_path=f'{runner.timestamp}.json')
            self._module_norms = None

    # ------------------------------------------------------------------ skipping
    def _on_skipped(self, runner, decision: dict, outputs: Optional[dict]) -> None:
        self.skipped += 1
        self.consecutive += 1
        iteration = runner.iter + 1
        runner.logger.warning(
            f'iteration {iteration}: non-finite step skipped (loss '
            f'{"finite" if decision["loss_finite"] else "non-finite"}, grad_norm '
            f'{decision["grad_norm"]}); {self.consecutive} in a row, {self.skipped} in all')
        if self.drop_nonfinite_logs and outputs:
            for key in [k for k, v in outputs.items() if isinstance(v, (Tensor, float, int))
                        and not bool(torch.isfinite(torch.as_tensor(v)).all())]:
                outputs.pop(key)
        if self.consecutive < self.max_consecutive:
            return
        last_iter = iteration >= runner.max_iters
        target = self.last_good_ckpt
        if self.rollback and self.rollbacks < self.max_rollbacks and not last_iter and target:
            if not osp.isfile(target):
                raise self._error(runner, decision, f'the checkpoint to roll back to, {target!r}, '
                                  'no longer exists (raise max_keep_ckpts of the checkpoint hook)')
            self._rollback_to = target
            return
        why = ''
        if self.rollback and not target:
            why = 'no good checkpoint was saved yet to roll back to'
        elif self.rollback and self.rollbacks >= self.max_rollbacks:
            why = f'already rolled back {self.rollbacks} times (max_rollbacks={self.max_rollbacks})'
        raise self._error(runner, decision, why)

    def _do_rollback(self, runner) -> None:
        target, self._rollback_to = self._rollback_to, None
        runner.logger.warning(f'{self.consecutive} non-finite steps in a row: rolling back to '
                              f'{target} (rollback {self.rollbacks + 1} of at most '
                              f'{self.max_rollbacks}); the batches that gave them are skipped')
        runner.resume(target)
        self.consecutive = 0
        self.rollbacks += 1
        self._seen_ckpt = runner.message_hub.get_info('last_ckpt')
        runner.logger.warning(f'rolled back to {target}: training goes on from iteration '
                              f'{runner.iter + 1}')

    # ------------------------------------------------------------------ the error
    @staticmethod
    def _pointer(runner) -> Optional[str]:
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        if osp.isfile(pointer):
            with open(pointer) as f:
                return f.read().strip() or None
        return None

    def _error(self, runner, decision: dict, why: str = '') -> NonFiniteTrainingError:
        iteration = runner.iter + 1
        ckpt = self.last_good_ckpt or runner.message_hub.get_info('last_ckpt') or \
            self._pointer(runner)
        config = runner.cfg.filename or 'CONFIG'
        if osp.isabs(config) and not osp.relpath(config).startswith('..'):
            config = osp.relpath(config)
        message = (f'training stopped at iteration {iteration}: {self.consecutive} consecutive '
                   f'non-finite steps (max_consecutive={self.max_consecutive}; the last had a '
                   f'{"finite" if decision["loss_finite"] else "non-finite"} loss and grad_norm '
                   f'{decision["grad_norm"]}){"; " + why if why else ""}')
        if ckpt:
            hints = [f'last good checkpoint: {ckpt}',
                     f'resume from it with: python tools/train.py {config} --work-dir '
                     f'{runner.work_dir} --resume {ckpt}']
        else:
            hints = ['no checkpoint was saved before the non-finite steps: train again '
                     f'with python tools/train.py {config} --work-dir {runner.work_dir}']
        hints.append('then lower the learning rate, lengthen the warm-up or clip gradients '
                     '(optim_wrapper.clip_grad), or set rollback=True on NonFiniteGuardHook')
        return NonFiniteTrainingError(message, hints)
