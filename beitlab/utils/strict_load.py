"""Strict weight loading: a checkpoint that does not fit the model is an error, not a warning.

mmengine loads ``load_from``, ``--resume`` and ``init_cfg=dict(type='Pretrained')`` with
``strict=False``: a tensor of the wrong shape, a missing or an unexpected key is one warning
among the log lines and the run goes on with those tensors at their random initialisation.
Everything in beitlab that loads weights for training goes through
:func:`load_state_dict_strict` instead, which raises one :class:`StrictLoadError` with one
table of every difference unless each difference is allowed explicitly.

The comparison runs on the state dict as the model's own loading code sees it, i.e. after
the layout adaptations of ``_load_from_state_dict`` overrides (``BEiTViT``: a shared relative
position bias copied into each layer, position embeddings and bias tables interpolated to
the model's grid; mmdet's two-stage detectors: ``bbox_head.*`` renamed ``rpn_head.*``): a
``load_state_dict`` pre-hook on every submodule records each tensor whose shape differs from
the parameter or buffer it would go into and takes it out, so that nothing of the wrong
shape is copied and torch's own ``size mismatch`` error never fires. As with torch's
``load_state_dict(strict=True)``, the tensors that fit have been copied when the error is
raised; a run stops there, so the half-loaded model is never trained.

Allowances are patterns matched against the full key: a glob (``fnmatch``, e.g.
``'head.*'``) or, with the prefix ``re:``, a regular expression matched against the whole
key (``'re:blocks\\.\\d+\\.attn\\.relative_position_bias_table'``). An allowed missing key
keeps its initialisation, an allowed unexpected key is ignored and a tensor whose shape
mismatch is allowed is not loaded (the model keeps its own). Allowed differences are
logged. ``docs/reliability.md`` ("Strict loading") lists the config keys that set them.

The strict ``init_cfg=dict(type='Pretrained')`` is :mod:`beitlab.checkpoint.pretrained_init`;
the optimizer-state check of ``--resume`` is :mod:`beitlab.utils.optimizer_state`.
"""
import fnmatch
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Type, Union

import torch
from mmengine.logging import print_log
from torch import nn

from .cli import HintedError

__all__ = [
    'Allowance', 'AllowHint', 'ShapeMismatch', 'format_table', 'StrictLoadError',
    'StrictLoadReport', 'load_state_dict_strict', 'load_checkpoint_strict', 'format_shape', 'MAX_TABLE_ROWS'
]

# Rows of the difference table shown before "... and N more".
MAX_TABLE_ROWS = 20
_KINDS = ('missing', 'unexpected', 'shape_mismatch')
Patterns = Union[str, Sequence[str]]


def _as_patterns(value: Optional[Patterns], where: str) -> Tuple[str, ...]:
    """A pattern list from ``None``, one string or a sequence of strings; regexes are checked."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
        raise TypeError(f'{where} must be a list of key patterns (strings), got {value!r}')
    for pattern in value:
        if pattern.startswith('re:'):
            try:
                re.compile(pattern[3:])
            except re.error as err:
                raise ValueError(f'{where}: {pattern!r} is not a valid regular expression '
                                 f'({err})') from None
    return tuple(value)


def _matches(pattern: str, key: str) -> bool:
    if pattern.startswith('re:'):
        return re.fullmatch(pattern[3:], key) is not None
    return fnmatch.fnmatchcase(key, pattern)


@dataclass(frozen=True)
class Allowance:
    """Differences between a checkpoint and a model that may pass, as key patterns.

    Args:
        missing: model keys the checkpoint may lack (they keep their initialisation).
        unexpected: checkpoint keys the model may lack (they are ignored).
        shape_mismatch: keys whose tensor may have another shape (not loaded).
    """

    missing: Tuple[str, ...] = ()
    unexpected: Tuple[str, ...] = ()
    shape_mismatch: Tuple[str, ...] = ()

    @classmethod
    def from_lists(cls, missing: Optional[Patterns] = None, unexpected: Optional[Patterns] = None,
                   shape_mismatch: Optional[Patterns] = None, where: str = 'allow') -> 'Allowance':
        """Validated patterns; ``where`` names the option in errors (e.g. ``'init_cfg'``)."""
        return cls(_as_patterns(missing, f'{where} missing'),
                   _as_patterns(unexpected, f'{where} unexpected'),
                   _as_patterns(shape_mismatch, f'{where} shape_mismatch'))

    @classmethod
    def from_config(cls, value: Optional[Mapping], key: str) -> 'Allowance':
        """Parse a config value ``dict(missing=[...], unexpected=[...], shape_mismatch=[...])``
        (or ``None``); ``key`` is the config key, named in errors (a typo in a sub-key is one)."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise TypeError(f'{key} must be a dict with the keys {list(_KINDS)}, got {value!r}')
        unknown = sorted(set(value) - set(_KINDS))
        if unknown:
            raise KeyError(f'{key} has unknown keys {unknown}; expected some of {list(_KINDS)}')
        return cls.from_lists(where=key, **{k: value.get(k) for k in _KINDS})

    def merged(self, other: 'Allowance') -> 'Allowance':
        return Allowance(self.missing + other.missing, self.unexpected + other.unexpected,
                         self.shape_mismatch + other.shape_mismatch)

    def allows(self, kind: str, key: str) -> bool:
        return any(_matches(p, key) for p in getattr(self, kind))

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shape_mismatch)


class ShapeMismatch(NamedTuple):
    """A checkpoint tensor whose shape differs from the model's parameter or buffer."""

    key: str
    checkpoint: Tuple[int, ...]
    model: Tuple[int, ...]


def format_shape(shape: Optional[Sequence[int]]) -> str:
    return '-' if shape is None else '[' + ', '.join(str(int(s)) for s in shape) + ']'


def format_table(rows: Sequence[Tuple[str, str, str, str]], limit: int = MAX_TABLE_ROWS) -> List[str]:
    """``(difference, key, checkpoint, model)`` rows as aligned lines with a header, at most
    ``limit`` rows, then ``... and N more``. Columns are separated by `` | `` so that the rows
    still read as a table when their spacing is collapsed (the command-line error lines)."""
    head = ('difference', 'key', 'checkpoint', 'model')
    shown = list(rows[:limit])
    widths = [max(len(r[i]) for r in [head, *shown]) for i in range(4)]
    lines = [' | '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *shown]]
    if len(rows) > limit:
        lines.append(f'... and {len(rows) - limit} more')
    return lines


class StrictLoadError(HintedError, RuntimeError):
    """A checkpoint does not fit the model: missing keys, unexpected keys or shape mismatches.

    ``message`` names the checkpoint and counts the differences; ``hints`` hold the table
    (``difference | key | checkpoint | model``, at most :data:`MAX_TABLE_ROWS` rows) and how
    to allow the differences. ``missing_keys``, ``unexpected_keys`` and ``shape_mismatches``
    hold every difference that was not allowed; ``table`` is the table as one text.
    """

    def __init__(self, message: str, hints: Sequence[str] = (), source: str = '',
                 missing_keys: Sequence[str] = (), unexpected_keys: Sequence[str] = (),
                 shape_mismatches: Sequence[ShapeMismatch] = (),
                 table: Sequence[str] = ()) -> None:
        super().__init__(message, hints)
        self.source = source
        self.missing_keys = list(missing_keys)
        self.unexpected_keys = list(unexpected_keys)
        self.shape_mismatches = list(shape_mismatches)
        self.table = '\n'.join(table)


@dataclass
class StrictLoadReport:
    """What a strict load let through, all of it allowed: ``missing_keys`` (left at their
    initialisation), ``unexpected_keys`` (ignored) and ``shape_mismatches`` (not loaded)."""

    source: str
    missing_keys: List[str] = field(default_factory=list)
    unexpected_keys: List[str] = field(default_factory=list)
    shape_mismatches: List[ShapeMismatch] = field(default_factory=list)


def _count(n: int, word: str) -> str:
    return f'{n} {word}' + ('' if n == 1 else ('es' if word.endswith('h') else 's'))


def _suggestion(names: Tuple[str, str, str], missing: Sequence[str], unexpected: Sequence[str],
                mismatched: Sequence[ShapeMismatch]) -> str:
    """``missing=['a'], unexpected=[...]`` for the kinds that occur (at most 3 keys each)."""
    parts = []
    for name, keys in zip(names, (missing, unexpected, [m.key for m in mismatched])):
        if keys:
            shown = [repr(k) for k in keys[:3]] + (['...'] if len(keys) > 3 else [])
            parts.append(f'{name}=[{", ".join(shown)}]')
    return ', '.join(parts)


@dataclass(frozen=True)
class AllowHint:
    """Where the user allows differences, for the error's hint lines.

    Args:
        template: the option with ``{}`` where the lists go, e.g.
            ``'load_from_allow = dict({}) in the config'``.
        names: the names of the missing / unexpected / shape-mismatch lists there.
        note: one more hint line (another way forward), or ``''``.
    """

    template: str
    names: Tuple[str, str, str] = _KINDS
    note: str = ''


def _difference_rows(missing: Sequence[str], unexpected: Sequence[str],
                     mismatched: Sequence[ShapeMismatch], model_shapes: Mapping[str, Any],
                     ckpt_shapes: Mapping[str, Any]) -> List[Tuple[str, str, str, str]]:
    rows = [('shape', m.key, format_shape(m.checkpoint), format_shape(m.model)) for m in mismatched]
    rows += [('missing', k, '-', format_shape(model_shapes.get(k))) for k in missing]
    rows += [('unexpected', k, format_shape(ckpt_shapes.get(k)), '-') for k in unexpected]
    return rows


def _persistent_tensors(module: nn.Module) -> Iterable[Tuple[str, torch.Tensor]]:
    """The module's own parameters and persistent buffers (not its children's)."""
    for name, param in module._parameters.items():
        if param is not None:
            yield name, param
    for name, buf in module._buffers.items():
        if buf is not None and name not in module._non_persistent_buffers_set:
            yield name, buf


def _tensor_shape(value: Any) -> Optional[Tuple[int, ...]]:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def load_state_dict_strict(module: nn.Module,
                           state: Mapping[str, Any],
                           source: str,
                           allow_missing: Optional[Patterns] = (),
                           allow_unexpected: Optional[Patterns] = (),
                           allow_shape_mismatch: Optional[Patterns] = (),
                           allow_hint: Optional[AllowHint] = None,
                           target: Optional[str] = None,
                           extra_hints: Sequence[str] = (),
                           error_type: Type[StrictLoadError] = StrictLoadError,
                           logger: Optional[str] = 'current') -> StrictLoadReport:
    """Load ``state`` into ``module``; raise unless every difference is allowed.

    Args:
        module: the model (or a part of it) to load into.
        state: its state dict (``_metadata`` is kept, for modules that read versions).
        source: where ``state`` comes from (a file path), named in the error.
        allow_missing, allow_unexpected, allow_shape_mismatch: key patterns (glob, or
            ``re:`` + regex) of differences that may pass; see the module docstring.
        allow_hint: where the user sets those patterns, for the error's last line.
        target: what is loaded into, in the error (default: the module's class name).
        extra_hints: further lines after the table (another way forward).
        error_type: the class raised (a :class:`StrictLoadError` subclass).
        logger: mmengine logger for the line that lists the allowed differences.
    Returns:
        :class:`StrictLoadReport` of the allowed differences.
    Raises:
        StrictLoadError: (or ``error_type``) with one table of every difference that is not
            allowed; the keys are those after the model's own layout adaptations.
    """
    allowance = Allowance.from_lists(allow_missing, allow_unexpected, allow_shape_mismatch)
    metadata = getattr(state, '_metadata', None)
    state = OrderedDict(state)
    if metadata is not None:
        state._metadata = metadata  # type: ignore[attr-defined]
    ckpt_shapes = {k: _tensor_shape(v) for k, v in state.items()}
    mismatched: List[ShapeMismatch] = []

    def take_out_mismatches(mod: nn.Module, local_state: dict, prefix: str, *args: Any) -> None:
        # runs inside nn.Module._load_from_state_dict, after the subclass's adaptation
        for name, tensor in _persistent_tensors(mod):
            key = prefix + name
            value = local_state.get(key)
            if not isinstance(value, torch.Tensor) or nn.parameter.is_lazy(tensor):
                continue
            if value.shape != tensor.shape:
                mismatched.append(ShapeMismatch(key, tuple(value.shape), tuple(tensor.shape)))
                ckpt_shapes[key] = tuple(value.shape)
                del local_state[key]

    handles = [m.register_load_state_dict_pre_hook(take_out_mismatches) for m in module.modules()]
    try:
        result = module.load_state_dict(state, strict=False)
    finally:
        for handle in handles:
            handle.remove()
    mismatched_keys = {m.key for m in mismatched}
    missing = [k for k in result.missing_keys if k not in mismatched_keys]
    unexpected = list(result.unexpected_keys)

    bad_missing = [k for k in missing if not allowance.allows('missing', k)]
    bad_unexpected = [k for k in unexpected if not allowance.allows('unexpected', k)]
    bad_shapes = [m for m in mismatched if not allowance.allows('shape_mismatch', m.key)]
    target = target or type(module).__name__
    if bad_missing or bad_unexpected or bad_shapes:
        model_shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()
                        if isinstance(v, torch.Tensor)}
        rows = _difference_rows(bad_missing, bad_unexpected, bad_shapes, model_shapes,
                                ckpt_shapes)
        counts = [_count(n, w) for n, w in ((len(bad_shapes), 'shape mismatch'),
                                             (len(bad_missing), 'missing key'),
                                             (len(bad_unexpected), 'unexpected key')) if n]
        message = f'checkpoint {source!r} does not fit {target}: {", ".join(counts)}'
        table = format_table(rows)
        hints = list(table)
        if allow_hint is not None:
            lists = _suggestion(allow_hint.names, bad_missing, bad_unexpected, bad_shapes)
            hints.append('to load it anyway, allow each difference explicitly: '
                         + allow_hint.template.format(lists)
                         + ' (glob patterns, or \'re:\' + a regular expression)')
            if allow_hint.note:
                hints.append(allow_hint.note)
        hints.extend(extra_hints)
        raise error_type(message, hints, source=source, missing_keys=bad_missing,
                         unexpected_keys=bad_unexpected, shape_mismatches=bad_shapes,
                         table=table)

    report = StrictLoadReport(source, missing, unexpected, mismatched)
    if missing or unexpected or mismatched:
        print_log(f'{source}: allowed differences loading into {target}: '
                  f'missing (kept at init) {missing or "none"}; unexpected (ignored) '
                  f'{unexpected or "none"}; shape mismatches (not loaded) '
                  f'{[tuple(m) for m in mismatched] or "none"}', logger=logger)
    seen = {'missing': missing, 'unexpected': unexpected,
            'shape_mismatch': [m.key for m in mismatched]}
    for kind in _KINDS:
        for pattern in getattr(allowance, kind):
            if not any(_matches(pattern, k) for k in seen[kind]):
                print_log(f'{source}: allowance {kind} {pattern!r} matched no difference',
                          logger=logger)
    return report


def load_checkpoint_strict(module: nn.Module, path: str, prefix: str = '',
                           allow_missing: Optional[Patterns] = (),
                           allow_unexpected: Optional[Patterns] = (),
                           allow_shape_mismatch: Optional[Patterns] = (),
                           allow_hint: Optional[AllowHint] = None,
                           target: Optional[str] = None,
                           extra_hints: Sequence[str] = ()) -> StrictLoadReport:
    """Read ``path`` (``.pth`` with ``weights_only=True``, or ``.safetensors``), take its
    weights with the module's names (:func:`beitlab.checkpoint.model_state.read_model_state`:
    the one unwrap rule, an official or other registered layout converted to beitlab's
    names, the keys under ``prefix`` with the prefix stripped, ``''``: every key; a recorded
    ``meta['backbone']`` checked when ``prefix='backbone.'``) and load them with
    :func:`load_state_dict_strict` (the other arguments are its own).

    Raises:
        KeyError: no key of the file starts with ``prefix`` (``CheckpointKeyError``).
        BackboneMetaMismatchError: the recorded backbone contradicts ``module``.
        StrictLoadError: the weights do not fit ``module``.
    """
    from beitlab.checkpoint.model_state import read_model_state
    state = read_model_state(path, module, prefix).state
    return load_state_dict_strict(module, state, str(path), allow_missing, allow_unexpected,
                                  allow_shape_mismatch, allow_hint=allow_hint, target=target,
                                  extra_hints=extra_hints)
