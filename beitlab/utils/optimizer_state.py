"""Check that a checkpoint's optimizer state fits the optimizer being resumed (``--resume``).

torch maps saved state to parameters by position and checks only counts, so the moments of
another model width load silently and the first step fails inside the optimizer; this check
names every parameter whose saved state does not fit, in one table.
"""
from typing import Any, List, Mapping, Tuple

import torch
from torch import nn

from .strict_load import StrictLoadError, format_shape, format_table

__all__ = ['OptimizerStateError', 'check_optimizer_state']


class OptimizerStateError(StrictLoadError):
    """The optimizer state of a checkpoint does not fit the optimizer being resumed."""


def _unwrap_optimizers(optim_wrapper: Any, saved: Mapping) -> List[Tuple[str, Any, Mapping]]:
    """``(name, torch optimizer, saved optimizer state)`` for an mmengine ``OptimWrapper``,
    an ``OptimWrapperDict`` (one per name) or a torch optimizer."""
    wrappers = getattr(optim_wrapper, 'optim_wrappers', None)
    if isinstance(wrappers, Mapping):
        out = []
        for name, wrapper in wrappers.items():
            if name not in saved:
                raise OptimizerStateError(
                    f'the checkpoint has no state for the optimizer {name!r} (it holds '
                    f'{sorted(saved)})', [])
            out.extend((name, opt, st) for _, opt, st in _unwrap_optimizers(wrapper, saved[name]))
        return out
    optimizer = getattr(optim_wrapper, 'optimizer', optim_wrapper)
    return [('', optimizer, saved)]


def check_optimizer_state(optim_wrapper: Any, saved: Mapping, model: nn.Module,
                          source: str) -> None:
    """Raise :class:`OptimizerStateError` unless the saved optimizer state fits the optimizer.

    torch maps saved state to parameters by position (group by group) and checks only the
    number of groups and of parameters per group, so the moments of another model width
    load and the first step fails inside the optimizer. This compares the number of groups,
    the parameters per group and the shape of every saved state tensor (``exp_avg``,
    ``exp_avg_sq``, ``momentum_buffer``, ...) with the parameter it belongs to, and names the
    parameters (``model.named_parameters()``).
    """
    names = {id(p): n for n, p in model.named_parameters()}
    rows: List[Tuple[str, str, str, str]] = []
    for opt_name, optimizer, state in _unwrap_optimizers(optim_wrapper, saved):
        tag = f'optimizer {opt_name!r} ' if opt_name else 'optimizer '
        groups, saved_groups = optimizer.param_groups, state.get('param_groups', [])
        if len(groups) != len(saved_groups):
            rows.append((tag + 'param groups', '-', str(len(saved_groups)), str(len(groups))))
            continue
        sizes_fit = True
        for i, (group, saved_group) in enumerate(zip(groups, saved_groups)):
            if len(group['params']) != len(saved_group['params']):
                sizes_fit = False
                first = ', '.join(names.get(id(p), '?') for p in group['params'][:3])
                rows.append((tag + f'group {i} size', first + (', ...' if len(group['params']) > 3
                                                              else ''),
                             f'{len(saved_group["params"])} params',
                             f'{len(group["params"])} params'))
        if not sizes_fit:
            continue
        saved_state = state.get('state', {})
        for group, saved_group in zip(groups, saved_groups):
            for param, saved_id in zip(group['params'], saved_group['params']):
                for key, value in saved_state.get(saved_id, {}).items():
                    if isinstance(value, torch.Tensor) and value.dim() > 0 and \
                            value.shape != param.shape:
                        rows.append((tag + 'state', f'{names.get(id(param), "?")} ({key})',
                                     format_shape(value.shape), format_shape(param.shape)))
    if rows:
        table = format_table(rows)
        raise OptimizerStateError(
            f'the optimizer state in {source!r} does not fit the optimizer of this run '
            f'({len(rows)} differences; the model column is the parameter\'s shape)',
            [*table, 'resume with the config the checkpoint was written with, or start a new '
             f'run from its weights only with load_from={source!r} (the optimizer starts '
             'afresh)'], source=source, table=table)
