"""Set the length of an iteration-based schedule by scheduler type, not list position.

``--cfg-options param_scheduler.1.end=N`` names the second scheduler of the list, whatever
it is: add a scheduler in front of the warm-up and the same option moves the warm-up's end.
:func:`schedule_options` finds the schedulers by type instead and returns the cfg-options
that give the schedule a new length, the scheduler list as a whole included.

A schedule is read per scheduled parameter (``lr`` for ``*LR``, ``momentum`` for
``*Momentum``, ``param_name`` for ``*ParamScheduler``). Each parameter has at most one
warm-up, a ``Linear*`` scheduler from iteration 0, and exactly one main scheduler,
``CosineAnnealing*``, ``MultiStep*`` or ``Poly*``, which begins either at 0 (running
alongside the warm-up, as mmdet configs do) or where the warm-up ends (as the BEiT
configs do, after ``cosine_scheduler`` of microsoft/unilm ``beit/utils.py``). Any
other layout is an error that names the types found.
"""
import copy
import re
from typing import Any, Dict, List, Optional, Tuple, Union

from mmengine.config import Config

__all__ = ['ScheduleLayoutError', 'schedule_options']

# <shape><parameter>: LinearLR, CosineAnnealingMomentum, PolyParamScheduler, ...
_TYPE = re.compile(r'^(Linear|CosineAnnealing|MultiStep|Poly)(LR|Momentum|ParamScheduler)$')
_MAIN_SHAPES = ('CosineAnnealing', 'MultiStep', 'Poly')
_KNOWN = ('LinearLR (warm-up from iteration 0) followed or accompanied by one of '
          'CosineAnnealingLR, MultiStepLR, PolyLR (and the same shapes for *Momentum and '
          '*ParamScheduler)')


class ScheduleLayoutError(ValueError):
    """The config's ``param_scheduler`` is not a layout :func:`schedule_options` can resize."""


def _type_name(scheduler: dict) -> str:
    """``'mmengine.CosineAnnealingLR'`` or the class itself -> ``'CosineAnnealingLR'``."""
    kind = scheduler.get('type')
    name = getattr(kind, '__name__', kind)
    return str(name).rsplit('.', 1)[-1]


def _iteration_based(loop: dict) -> bool:
    """Whether ``train_cfg`` builds mmengine's ``IterBasedTrainLoop`` or a subclass of it
    (mmengine builds one from ``by_epoch=False`` without a type too)."""
    from mmengine.runner import IterBasedTrainLoop

    import beitlab.engine.loops  # noqa: F401  (beitlab's loops, registered)
    from beitlab.registry import LOOPS
    kind = loop.get('type')
    if kind is None:
        return loop.get('by_epoch') is False
    if not isinstance(kind, str):
        return isinstance(kind, type) and issubclass(kind, IterBasedTrainLoop)
    found = LOOPS.get(kind)
    return isinstance(found, type) and issubclass(found, IterBasedTrainLoop)

def _plain(value: Any) -> Any:
    """A ConfigDict / list of them as plain dicts and lists (what cfg-options carry)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _scaled_milestones(milestones: List[int], old_span: int, new_span: int, where: str) -> List[int]:
    """``milestones`` (counted from the scheduler's ``begin``) stretched to a new span."""
    scaled = [round(m * new_span / old_span) for m in milestones]
    if any(b <= a for a, b in zip(scaled, scaled[1:])) or not 0 < scaled[0] or scaled[-1] >= new_span:
        raise ScheduleLayoutError(
            f'{where}: milestones {milestones} of {old_span} iterations scale to {scaled} for '
            f'{new_span} iterations, which are not increasing inside (0, {new_span}); give a '
            f'longer schedule or set the milestones yourself')
    return scaled


def _group(schedulers: List[dict]) -> Dict[str, Dict[str, Tuple[int, dict]]]:
    """``{parameter: {'warmup': (index, cfg), 'main': (index, cfg)}}``; raises on anything else."""
    types = [_type_name(s) for s in schedulers]
    layout = f'param_scheduler types {types}; schedule_options understands {_KNOWN}'
    groups: Dict[str, Dict[str, Tuple[int, dict]]] = {}
    for index, (name, sched) in enumerate(zip(types, schedulers)):
        match = _TYPE.match(name)
        if match is None:
            raise ScheduleLayoutError(f'unknown scheduler {name!r} (position {index}) in {layout}')
        shape, param = match.groups()
        if sched.get('by_epoch', True):
            raise ScheduleLayoutError(
                f'{name} (position {index}) counts epochs (by_epoch is not False); '
                f'schedule_options sets iteration-based schedules only ({layout})')
        key = {'LR': 'lr', 'Momentum': 'momentum'}.get(param) or sched.get('param_name', '?')
        role = 'main' if shape in _MAIN_SHAPES else 'warmup'
        if role in groups.setdefault(key, {}):
            other = groups[key][role][0]
            raise ScheduleLayoutError(
                f'two {role} schedulers for {key!r} (positions {other} and {index}) in {layout}')
        groups[key][role] = (index, sched)
    for key, roles in groups.items():
        if 'main' not in roles:
            raise ScheduleLayoutError(f'no main scheduler for {key!r} in {layout}')
        if 'warmup' in roles and roles['warmup'][1].get('begin', 0) != 0:
            raise ScheduleLayoutError(
                f'the {key!r} warm-up begins at {roles["warmup"][1]["begin"]}, not 0, in {layout}')
    return groups


def schedule_options(cfg: Union[Config, str], max_iters: int,
                     warmup_iters: Optional[int] = None) -> Dict[str, Any]:
    """The cfg-options that make ``cfg`` train for ``max_iters`` iterations.

    Args:
        cfg: a loaded mmengine config (or its path) with an iteration-based training loop
            and schedulers (``by_epoch=False``).
        max_iters: the new length of training.
        warmup_iters: the new warm-up length of every warm-up; ``None`` keeps each one's.

    Returns:
        ``{'train_cfg.max_iters': max_iters, 'param_scheduler': [...]}``: the whole list,
        in the config's order, with the warm-up ending at the warm-up length, the main
        scheduler beginning at 0 or at the warm-up's end (as it did) and ending at
        ``max_iters``; a ``T_max`` that equalled the old span becomes the new span, and
        ``MultiStep*`` milestones are stretched in proportion.

    Raises:
        ScheduleLayoutError: a layout other than the module docstring's, a ``T_max`` that
            was not the span, or a warm-up not shorter than ``max_iters``.
    """
    if isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    where = getattr(cfg, 'filename', None) or 'the config'
    loop = cfg.get('train_cfg') or {}
    if not _iteration_based(loop) or 'max_iters' not in loop:
        raise ScheduleLayoutError(f'{where}: train_cfg is {_plain(loop)!r}; schedule_options needs '
                                  "an IterBasedTrainLoop (or a subclass, or by_epoch=False) with "
                                  'max_iters')
    if not isinstance(max_iters, int) or max_iters < 1:
        raise ValueError(f'max_iters must be a positive int, got {max_iters!r}')
    if warmup_iters is not None and not 1 <= warmup_iters < max_iters:
        raise ValueError(f'warmup_iters must be in [1, max_iters={max_iters}), got {warmup_iters!r}')
    old_max = loop['max_iters']
    listed = cfg.get('param_scheduler') or []
    schedulers = [_plain(s) for s in ([listed] if isinstance(listed, dict) else listed)]
    new = copy.deepcopy(schedulers)
    groups = _group(schedulers)
    if warmup_iters is not None and not any('warmup' in roles for roles in groups.values()):
        raise ScheduleLayoutError(f'{where}: warmup_iters={warmup_iters} given but param_scheduler '
                                  f'{[_type_name(s) for s in schedulers]} has no warm-up')
    for key, roles in groups.items():
        old_warm = roles['warmup'][1]['end'] if 'warmup' in roles else 0
        warm = old_warm if warmup_iters is None or 'warmup' not in roles else warmup_iters
        if 'warmup' in roles:
            if warm >= max_iters:
                raise ScheduleLayoutError(
                    f'{where}: the {key!r} warm-up of {warm} iterations is not shorter than '
                    f'max_iters={max_iters}; pass warmup_iters')
            new[roles['warmup'][0]]['end'] = warm
        index, main = roles['main']
        name = f'{where}: {_type_name(main)} (position {index})'
        begin, end = main.get('begin', 0), main.get('end', old_max)
        if begin not in (0, old_warm):
            raise ScheduleLayoutError(f'{name} begins at {begin}, neither 0 nor where the warm-up '
                                      f'ends ({old_warm})')
        if end != old_max:
            raise ScheduleLayoutError(f'{name} ends at {end}, not at train_cfg.max_iters={old_max}')
        new_begin = 0 if begin == 0 else warm
        out = new[index]
        out.update(begin=new_begin, end=max_iters)
        if main.get('T_max') is not None:
            if main['T_max'] != end - begin:
                raise ScheduleLayoutError(f'{name} has T_max={main["T_max"]}, not its span '
                                          f'end - begin = {end - begin}; set it yourself')
            out['T_max'] = max_iters - new_begin
        if 'milestones' in main:
            out['milestones'] = _scaled_milestones(list(main['milestones']), end - begin,
                                                   max_iters - new_begin, name)
    return {'train_cfg.max_iters': max_iters, 'param_scheduler': new}
