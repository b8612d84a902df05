"""The weights of a checkpoint with the names of the model they are loaded into.

Used by every loader that fills a whole module (``load_from`` / ``--resume`` /
``tools/test.py`` through :class:`~beitlab.engine.runner.BeitlabRunner`,
``init_cfg=dict(type='Pretrained')``, frozen networks such as the VQ-KD teacher,
:func:`beitlab.apis.init_model`):

1. the state dict is unwrapped by the one rule (:mod:`beitlab.checkpoint.unwrap`);
2. a state dict in a registered layout (:mod:`beitlab.checkpoint.layouts`: an official
   ``{'model': ...}`` file, ...) is converted to beitlab's names (``backbone.*``,
   ``head.fc.*``; its kind read from its keys), unless its own names fit the model better
   (official names loaded into a bare ``BEiTViT``);
3. with a ``prefix``, the entries under it are kept, the prefix stripped;
4. a ``meta['backbone']`` recorded by the converter is checked against the module when the
   backbone is what is loaded (``prefix='backbone.'``).
"""
import os
from typing import Any, Dict, Iterable, Mapping, NamedTuple, Optional, Union

from torch import Tensor, nn

from .errors import CheckpointKeyError
from .io import load_checkpoint_file
from .layouts import BEITLAB, detect_layout, layout_to_beitlab
from .meta import check_backbone_meta
from .unwrap import checkpoint_meta, select_prefix, unwrap_state_dict

__all__ = ['ModelState', 'model_state_dict', 'read_model_state']

BACKBONE_PREFIX = 'backbone.'


class ModelState(NamedTuple):
    """``state``: the weights to load; ``layout``: ``'beitlab'`` or the registered layout
    they were converted from; ``meta``: the checkpoint's ``meta`` (``{}`` without one);
    ``kind``: the kind a conversion read from the keys (None when nothing was converted)."""

    state: Dict[str, Tensor]
    layout: str
    meta: Dict[str, Any]
    kind: Optional[str]


def model_state_dict(checkpoint: Mapping[str, Any], source: str = 'checkpoint',
                     model_keys: Iterable[str] = (), prefix: Optional[str] = None) -> ModelState:
    """Steps 1-3 of the module docstring for a loaded checkpoint.

    Args:
        checkpoint: what the file holds.
        source: the file, for errors.
        model_keys: the state-dict keys of the module loaded into (without ``prefix``): a
            state dict in a registered layout is converted when the converted names match
            more of them than its own names do (always, when none are given).
        prefix: keep only the entries under it, stripped (None or ``''``: all).
    Raises:
        CheckpointKeyError: no state dict in ``checkpoint``, a registered layout whose keys
            do not convert, or no key under ``prefix``.
    """
    state = unwrap_state_dict(checkpoint, source)
    own = {(prefix or '') + k for k in model_keys}
    layout, kind = BEITLAB, None
    found = detect_layout(state, default=None)
    if found is not None:
        raw_fit = len(own.intersection(state))
        try:
            converted, _, found_kind = layout_to_beitlab(found, state)
        except CheckpointKeyError:
            if not raw_fit:
                raise
        else:  # the names that fit the model best (beitlab's unless no module is given)
            if not own or len(own.intersection(converted)) > raw_fit:
                state, layout, kind = converted, found.name, found_kind
    if prefix:
        state = select_prefix(state, prefix, source)
    return ModelState(state, layout, checkpoint_meta(checkpoint), kind)


def read_model_state(checkpoint: Union[str, 'os.PathLike[str]', Mapping[str, Any]],
                     module: nn.Module, prefix: Optional[str] = None,
                     source: Optional[str] = None) -> ModelState:
    """All four steps for ``module``: ``checkpoint`` is a file (``.pth`` or
    ``.safetensors``) or its loaded content.

    Raises:
        BackboneMetaMismatchError: ``prefix='backbone.'`` and the file's ``meta['backbone']``
            contradicts ``module`` (width, depth, heads, MLP width, patch size, channels).
        and the errors of :func:`model_state_dict` and
        :func:`~beitlab.checkpoint.io.load_checkpoint_file`.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        source = source or repr(os.fspath(checkpoint))
        checkpoint = load_checkpoint_file(checkpoint)
    source = source or 'checkpoint'
    result = model_state_dict(checkpoint, source, module.state_dict().keys(), prefix)
    if prefix == BACKBONE_PREFIX:
        check_backbone_meta(result.meta, module, source)
    return result
