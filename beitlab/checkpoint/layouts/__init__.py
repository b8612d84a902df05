"""The checkpoint layouts beitlab reads and writes, by name (``--from`` / ``--to`` of
``tools/model_converters/convert.py``).

Each module named in :data:`LAYOUT_MODULES` exports ``LAYOUT``
(:class:`~beitlab.checkpoint.layouts.base.Layout`); :data:`LAYOUTS` maps each layout's name
to it, in that order. ``'beitlab'`` is not a layout here: it is the side every layout
converts to and from.
"""
import importlib
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

from torch import Tensor

from ..errors import CheckpointKeyError
from .base import KINDS, Arch, Layout, StateDict

__all__ = ['LAYOUT_MODULES', 'LAYOUTS', 'BEITLAB', 'get_layout', 'detect_layout',
           'layout_to_beitlab', 'infer_beitlab_kind', 'known_layout_names', 'Layout', 'KINDS']

# Detection tries them in this order; the first whose ``detect`` accepts a state dict wins.
LAYOUT_MODULES = ('official', 'hf', 'timm', 'mmpretrain')
BEITLAB = 'beitlab'


def _load_layouts() -> Dict[str, Layout]:
    layouts: Dict[str, Layout] = OrderedDict()
    for module in LAYOUT_MODULES:
        layout = importlib.import_module(f'{__name__}.{module}').LAYOUT
        if layout.name in layouts or layout.name == BEITLAB:
            raise ValueError(f'layout module {module!r} registers the name {layout.name!r} twice')
        layouts[layout.name] = layout
    return layouts


LAYOUTS: Dict[str, Layout] = _load_layouts()


def get_layout(name: str) -> Layout:
    """The layout called ``name``.

    Raises:
        KeyError: no such layout; the message names the known ones.
    """
    if name not in LAYOUTS:
        raise KeyError(f'unknown checkpoint layout {name!r}; known layouts: {list(LAYOUTS)} '
                       f'(and {BEITLAB!r} itself)')
    return LAYOUTS[name]


def detect_layout(state: Mapping[str, Tensor], default: Optional[str] = 'error'
                  ) -> Optional[Layout]:
    """The first layout (in :data:`LAYOUT_MODULES` order) whose ``detect`` accepts an
    unwrapped state dict.

    Args:
        default: ``'error'`` raises when none does; ``None`` returns None instead.
    Raises:
        CheckpointKeyError: no layout accepts ``state`` (and ``default='error'``); the message
            names the known layouts and the first keys.
    """
    for layout in LAYOUTS.values():
        if layout.detect(state):
            return layout
    if default is None:
        return None
    raise CheckpointKeyError(f'the keys of this state dict fit none of the layouts '
                             f'{list(LAYOUTS)} (first keys: {list(state)[:6]})')


def layout_to_beitlab(layout: Layout, state: Mapping[str, Tensor], kind: Optional[str] = None
                      ) -> Tuple[StateDict, Arch, str]:
    """``layout.to_beitlab`` for ``kind``, or for the kind the keys fit when None.

    Every kind of :data:`KINDS` is tried: the one that converts strictly wins; when several
    do (a bare backbone, without any head), ``'pretrain'`` if the result has a
    ``backbone.mask_token`` and ``'classifier'`` otherwise.

    Returns:
        ``(beitlab state dict, arch, kind)``.
    Raises:
        CheckpointKeyError: ``state`` fits no kind; the message gives each kind's reason.
    """
    if kind is not None:
        beitlab, arch = layout.to_beitlab(state, kind)
        return beitlab, arch, kind
    results, errors = {}, {}
    for candidate in KINDS:
        try:
            results[candidate] = layout.to_beitlab(state, candidate)
        except CheckpointKeyError as err:
            errors[candidate] = err
    if not results:
        raise CheckpointKeyError(
            f'the {layout.name} state dict fits no kind: ' +
            '; '.join(f'as {k}: {e}' for k, e in errors.items()),
            unknown=sorted({u for e in errors.values() for u in e.unknown}),
            missing=sorted({m for e in errors.values() for m in e.missing}))
    if len(results) == 1:
        kind = next(iter(results))
    else:
        kind = 'pretrain' if any('backbone.mask_token' in r[0] for r in results.values()) \
            else 'classifier'
    beitlab, arch = results[kind]
    return beitlab, arch, kind


def infer_beitlab_kind(state: Mapping[str, Tensor], meta: Optional[Mapping] = None
                       ) -> Tuple[str, str]:
    """``(kind, why)`` of a beitlab state dict: ``meta['kind']`` when a converter recorded it,
    else ``'pretrain'`` when it has ``backbone.mask_token`` (the ``[MASK]`` embedding of
    pre-training) and ``'classifier'`` otherwise."""
    if meta and meta.get('kind') in KINDS:
        return meta['kind'], "meta['kind']"
    if 'backbone.mask_token' in state:
        return 'pretrain', 'it has backbone.mask_token'
    return 'classifier', 'it has no backbone.mask_token'


def known_layout_names() -> List[str]:
    """``'beitlab'`` and every registered layout."""
    return [BEITLAB, *LAYOUTS]
