"""The one rule that finds the state dict inside a loaded checkpoint, and prefix selection.

Every loader of beitlab (pre-trained backbones, ``load_from`` / ``--resume``,
``init_cfg=dict(type='Pretrained')``, frozen networks such as the VQ-KD teacher, tokenizer
weights, :func:`beitlab.apis.init_model`, the converters) calls :func:`unwrap_state_dict`.

A *state dict* is a non-empty mapping whose values are all tensors. A checkpoint is either
one, or a dict holding one under the first of :data:`WRAPPER_KEYS` it has, in this order:

1. ``state_dict``: mmengine's ``Runner`` (``tools/train.py``, converted beitlab files,
   mmpretrain's model zoo) and timm's training script. With mmengine's ``EMAHook`` this
   already holds the averaged weights (the hook swaps them in before saving).
2. ``model``: official BEiT and BEiT v2 (``beit2/utils.py`` ``save_model`` writes
   ``{'model': ..., 'optimizer': ..., 'epoch': ..., 'model_ema': ...}``; the released files
   hold ``{'model': ...}``), as DeiT and MAE do.
3. ``module``: DeepSpeed's model-states files, which official BEiT writes with
   ``--enable_deepspeed``; the official fine-tuning reads ``--model_key model|module``, in
   that order.
4. ``ema``: a file that holds only an averaged copy. It comes last so that a file with
   both the trained weights and an EMA copy (official ``model`` + ``model_ema``) gives the
   trained weights, as the official loader does; pass ``key='model_ema'`` (or any other
   key) to take a copy by name.

The value under a wrapper key may itself be a wrapper (``{'module': {'model': ...}}``); it is
followed until a state dict is reached. A state dict whose every key starts with
``module.`` (saved from a ``DistributedDataParallel`` wrapper) loses that prefix.
"""
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional

from torch import Tensor

from .errors import CheckpointKeyError

__all__ = ['WRAPPER_KEYS', 'DDP_PREFIX', 'is_state_dict', 'unwrap_state_dict', 'checkpoint_meta',
           'has_prefix', 'select_prefix']

WRAPPER_KEYS = ('state_dict', 'model', 'module', 'ema')
DDP_PREFIX = 'module.'
_MAX_DEPTH = 4


def is_state_dict(obj: Any) -> bool:
    """A non-empty mapping of tensors."""
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(v, Tensor) for v in obj.values())


def _renamed(state: Mapping[str, Tensor], old_prefix: str, keep_only: bool) -> Dict[str, Tensor]:
    """``state`` with ``old_prefix`` stripped (``keep_only``: the other keys dropped); torch's
    ``_metadata`` (per-module versions, read by some ``_load_from_state_dict``) follows."""
    out: Dict[str, Tensor] = OrderedDict(
        (k[len(old_prefix):], v) for k, v in state.items()
        if k.startswith(old_prefix) or not keep_only)
    metadata = getattr(state, '_metadata', None)
    if metadata is not None:
        base = old_prefix[:-1] if old_prefix.endswith('.') else old_prefix
        out._metadata = OrderedDict(  # type: ignore[attr-defined]
            (k[len(old_prefix):] if k.startswith(old_prefix) else '' if k == base else k, v)
            for k, v in metadata.items() if k.startswith(old_prefix) or k == base)
    return out


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        kinds = {k: type(v).__name__ for k, v in list(obj.items())[:12]}
        more = f' and {len(obj) - 12} more' if len(obj) > 12 else ''
        return f'a dict with keys {kinds}{more}' if obj else 'an empty dict'
    return f'a {type(obj).__name__}'


def unwrap_state_dict(checkpoint: Any, source: str = 'checkpoint',
                      key: Optional[str] = None) -> Dict[str, Tensor]:
    """The state dict inside ``checkpoint`` (a loaded file), by the rule of this module.

    Args:
        checkpoint: what the file holds.
        source: the file, for the error.
        key: take the state dict under this key of the top level instead of the rule.
    Returns:
        ``{name: tensor}`` (the checkpoint's own mapping when nothing had to change).
    Raises:
        CheckpointKeyError: no state dict is found; the message names the keys (and the
            value types) that were there, and the wrapper keys looked for.
    """
    node, path = checkpoint, []
    if key is not None:
        if not isinstance(checkpoint, Mapping) or key not in checkpoint:
            raise CheckpointKeyError(f'{source} has no key {key!r}; it holds {_describe(checkpoint)}')
        node, path = checkpoint[key], [key]
    while not is_state_dict(node):
        inner = next((k for k in WRAPPER_KEYS if isinstance(node, Mapping)
                      and isinstance(node.get(k), Mapping)), None)
        if inner is None or len(path) >= _MAX_DEPTH:
            where = ''.join(f'[{k!r}]' for k in path)
            raise CheckpointKeyError(
                f'{source}{where} holds no state dict: expected a dict of tensors or one under '
                f'{" / ".join(repr(k) for k in WRAPPER_KEYS)}, found {_describe(node)}')
        node, path = node[inner], path + [inner]
    if all(k.startswith(DDP_PREFIX) for k in node):
        return _renamed(node, DDP_PREFIX, keep_only=True)
    return node  # type: ignore[return-value]


def checkpoint_meta(checkpoint: Any) -> Dict[str, Any]:
    """``checkpoint['meta']`` when it is a dict (beitlab and mmengine files), else ``{}``."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    return dict(meta) if isinstance(meta, Mapping) else {}


def has_prefix(state: Mapping[str, Any], prefix: str) -> bool:
    """Some key of ``state`` starts with ``prefix``."""
    return any(k.startswith(prefix) for k in state)


def select_prefix(state: Mapping[str, Tensor], prefix: str,
                  source: str = 'checkpoint') -> Dict[str, Tensor]:
    """The entries under ``prefix`` with the prefix stripped (``''``: all of them).

    Raises:
        CheckpointKeyError: no key starts with ``prefix``; the message names the prefix and
            the first keys.
    """
    if not prefix:
        return dict(state)
    if not has_prefix(state, prefix):
        first = list(state)[:6]
        raise CheckpointKeyError(f'{source} has no key starting with {prefix!r}; its first keys '
                                 f'are {first}' + (f' (of {len(state)})' if len(state) > 6 else ''))
    return _renamed(state, prefix, keep_only=True)
