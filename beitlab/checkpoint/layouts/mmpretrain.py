"""The mmpretrain BEiT / BEiT v2 layout.

Models (open-mmlab/mmpretrain):

- ``kind='pretrain'``: ``BEiT`` (``mmpretrain/models/selfsup/beit.py``) with the backbone
  ``BEiTPretrainViT`` (the same file; ``BEiTViT`` plus ``mask_token``) and the head
  ``BEiTV1Head`` or ``BEiTV2Head`` (``mmpretrain/models/heads/beitv1_head.py``,
  ``beitv2_head.py``: ``head.cls_head.*``, ``[V, D]``). BEiT v2 adds the neck ``BEiTV2Neck``
  (``mmpretrain/models/necks/beitv2_neck.py``): ``neck.patch_aggregation.{j}.*`` (layers
  without tables) and ``neck.norm.*``, the final norm shared by the last layer's tokens and
  the aggregation branch (official ``beit2/modeling_pretrain.py`` ``norm``); its backbone
  then has ``final_norm=False`` (no ``backbone.ln1``).
- ``kind='classifier'``: ``ImageClassifier`` with ``BEiTViT``
  (``mmpretrain/models/backbones/beit.py``, ``out_type='avg_featmap'``) and ``LinearClsHead``
  (``head.fc.*``), as in ``configs/beit*/benchmarks``. A ``VisionTransformerClsHead`` without
  hidden layer (``head.layers.head.*``) is read as well; export writes ``head.fc.*``.

Backbone names (``backbone.`` prefix), mmpretrain -> official:

- ``cls_token``, ``mask_token``, ``pos_embed`` -> the same (``[1, 1, D]``, ``[1, 1, D]``,
  ``[1, 1+N, D]``; ``pos_embed`` only with ``use_abs_pos_emb``);
- ``patch_embed.projection.*`` -> ``patch_embed.proj.*`` (mmcv ``PatchEmbed``);
- ``rel_pos_bias.relative_position_bias_table`` -> the same (``use_shared_rel_pos_bias``);
- ``layers.{i}.ln1.*``, ``layers.{i}.ln2.*`` -> ``blocks.{i}.norm1.*``, ``blocks.{i}.norm2.*``;
- ``layers.{i}.attn.{qkv.weight, q_bias, v_bias, proj.*, relative_position_bias_table}`` ->
  ``blocks.{i}.attn.*``, the same (``BEiTAttention`` with ``bias='qv_bias'``,
  ``mmpretrain/models/utils/attention.py``);
- ``layers.{i}.ffn.layers.0.0.*``, ``layers.{i}.ffn.layers.1.*`` -> ``blocks.{i}.mlp.fc1.*``,
  ``blocks.{i}.mlp.fc2.*`` (mmcv ``FFN``; its ``gamma2`` is an identity here);
- ``layers.{i}.gamma_1``, ``gamma_2`` -> the same (``layer_scale_init_value > 0``);
- ``ln1.*`` -> ``norm.*`` (``final_norm=True``); ``ln2.*`` -> ``fc_norm.*``
  (``out_type='avg_featmap'``).
  Every LayerNorm has BEiT's ``eps=1e-6`` (the default ``norm_cfg``).

Buffers: every table has a persistent ``relative_position_index`` next to it
(``layers.{i}.attn.relative_position_index``, ``rel_pos_bias.relative_position_index``),
built as the official one; import checks and drops them, export writes them, so the state
loads strictly into mmpretrain. The frozen tokenizer (``target_generator.*``: DALL-E or
VQ-KD weights, which both libraries load from their own file) and the preprocessor's
buffers are skipped on import.

BEiT v2 on the beitlab side is the ``BEiTv2`` algorithm: ``neck.patch_aggregation.{j}.*`` is
``neck.blocks.{j}.*`` (official block names), and the shared ``neck.norm`` becomes both
``backbone.norm`` and the neck's own ``neck.norm`` (beitlab normalises the two branches with
two modules; on export they must be equal). beitlab's aggregation takes the final CLS token
after the final norm, mmpretrain before it, so the branch's loss differs slightly.

``bias=True`` (a learnable k bias, ``attn.qkv.bias``) is not BEiT's and is reported as an
unknown key. The names pass through the official layout
(:mod:`~beitlab.checkpoint.layouts.official`), which validates them and infers the
architecture; its errors are reported with mmpretrain's names.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

from ..errors import CheckpointKeyError
from . import official
from .base import Arch, Layout, StateDict

__all__ = ['LAYOUT', 'mmpretrain_to_official', 'official_to_mmpretrain']

BACKBONE = 'backbone.'
_LAYER = re.compile(r'^layers\.(\d+)\.(.+)$')
_BLOCK = re.compile(r'^blocks\.(\d+)\.(.+)$')
_NECK_LAYER = re.compile(r'^neck\.patch_aggregation\.(\d+)\.(.+)$')
_BEITLAB_NECK_BLOCK = re.compile(r'^neck\.blocks\.(\d+)\.(.+)$')
SKIPPED_PREFIXES = ('target_generator.', 'data_preprocessor.')

# BEiTTransformerEncoderLayer suffix -> official block suffix
_LAYER_NAMES = {
    'gamma_1': 'gamma_1', 'gamma_2': 'gamma_2',
    'ln1.weight': 'norm1.weight', 'ln1.bias': 'norm1.bias',
    'attn.q_bias': 'attn.q_bias', 'attn.v_bias': 'attn.v_bias',
    'attn.relative_position_bias_table': 'attn.relative_position_bias_table',
    'attn.relative_position_index': 'attn.relative_position_index',
    'attn.qkv.weight': 'attn.qkv.weight',
    'attn.proj.weight': 'attn.proj.weight', 'attn.proj.bias': 'attn.proj.bias',
    'ln2.weight': 'norm2.weight', 'ln2.bias': 'norm2.bias',
    'ffn.layers.0.0.weight': 'mlp.fc1.weight', 'ffn.layers.0.0.bias': 'mlp.fc1.bias',
    'ffn.layers.1.weight': 'mlp.fc2.weight', 'ffn.layers.1.bias': 'mlp.fc2.bias',
}
# BEiTViT names outside its layers -> official
_MODEL_NAMES = {
    'cls_token': 'cls_token', 'mask_token': 'mask_token', 'pos_embed': 'pos_embed',
    'patch_embed.projection.weight': 'patch_embed.proj.weight',
    'patch_embed.projection.bias': 'patch_embed.proj.bias',
    'rel_pos_bias.relative_position_bias_table': 'rel_pos_bias.relative_position_bias_table',
    'rel_pos_bias.relative_position_index': 'rel_pos_bias.relative_position_index',
    'ln1.weight': 'norm.weight', 'ln1.bias': 'norm.bias',
    'ln2.weight': 'fc_norm.weight', 'ln2.bias': 'fc_norm.bias',
}
# heads by kind: mmpretrain -> official (the first of two names for one tensor is exported)
_HEAD_NAMES = {
    'pretrain': {'head.cls_head.weight': 'lm_head.weight', 'head.cls_head.bias': 'lm_head.bias',
                 'neck.norm.weight': 'norm.weight', 'neck.norm.bias': 'norm.bias'},
    'classifier': {'head.fc.weight': 'head.weight', 'head.fc.bias': 'head.bias',
                   'head.layers.head.weight': 'head.weight',
                   'head.layers.head.bias': 'head.bias'},
}
_LAYER_FROM_OFFICIAL = {v: k for k, v in _LAYER_NAMES.items()}
_MODEL_FROM_OFFICIAL = {v: k for k, v in _MODEL_NAMES.items()}
_NECK_NORM = ('neck.norm.weight', 'neck.norm.bias')


def _backbone_key(inner: str) -> Optional[str]:
    """``BEiTViT`` key (no prefix) -> official name, or None."""
    m = _LAYER.match(inner)
    if m is None:
        return _MODEL_NAMES.get(inner)
    name = _LAYER_NAMES.get(m.group(2))
    return f'blocks.{m.group(1)}.{name}' if name else None


def _mmpretrain_names(name: str, kind: str) -> List[str]:
    """The mmpretrain key holding an official name (for error messages)."""
    heads = [k for k, v in _HEAD_NAMES[kind].items() if v == name and not k.startswith('neck.')]
    if heads:
        return heads[:1]
    m = _BLOCK.match(name)
    if m is None:
        return [BACKBONE + _MODEL_FROM_OFFICIAL.get(name, name)]
    return [f'{BACKBONE}layers.{m.group(1)}.{_LAYER_FROM_OFFICIAL.get(m.group(2), m.group(2))}']


def mmpretrain_to_official(state: Mapping[str, Tensor], kind: str
                           ) -> Tuple[StateDict, StateDict, Dict[str, str]]:
    """An mmpretrain state dict -> (official checkpoint of ``kind``, beitlab ``neck.*`` of a
    BEiT v2 pre-training state, the mmpretrain key of each official name).

    Raises:
        CheckpointKeyError: keys that are not BEiT's, or two keys for one official parameter
            (e.g. ``backbone.ln1`` and the BEiT v2 ``neck.norm``, two final norms).
    """
    heads = _HEAD_NAMES[_check_kind(kind)]
    out: StateDict = OrderedDict()
    neck: StateDict = OrderedDict()
    source: Dict[str, str] = {}
    unknown: List[str] = []
    twice: List[str] = []
    for k, v in state.items():
        if k.startswith(SKIPPED_PREFIXES):
            continue
        m = _NECK_LAYER.match(k) if kind == 'pretrain' else None
        if m is not None:
            name = _LAYER_NAMES.get(m.group(2))
            if name is None or 'relative_position' in name:  # the neck's layers have no tables
                unknown.append(k)
            else:
                neck[f'neck.blocks.{m.group(1)}.{name}'] = v
            continue
        name = _backbone_key(k[len(BACKBONE):]) if k.startswith(BACKBONE) else heads.get(k)
        if name is None:
            unknown.append(k)
        elif name in out:
            twice.append(f'{k} (and {source[name]}: both are official {name!r})')
        else:
            out[name], source[name] = v, k
    missing = []
    if neck:  # BEiT v2: the shared final norm is also the aggregation branch's own norm here
        missing = [k for k in _NECK_NORM if k not in state]
        neck.update((k, state[k].clone()) for k in _NECK_NORM if k in state)
    if unknown or twice or missing:
        problems = [f'{what} {keys}' for what, keys in (
            ('keys that are not BEiT parameters of an mmpretrain ' + _MODEL_CLASS[kind], unknown),
            ('parameters given twice', twice), ('missing keys', missing)) if keys]
        raise CheckpointKeyError('mmpretrain BEiT state dict: ' + '; '.join(problems),
                                 unknown=unknown + twice, missing=missing)
    return out, neck, source


def official_to_mmpretrain(official_state: Mapping[str, Tensor], kind: str,
                           neck: Optional[Mapping[str, Tensor]] = None) -> StateDict:
    """An official checkpoint of ``kind`` (with its index buffers) -> mmpretrain names; with
    ``neck`` (beitlab ``neck.blocks.*`` and ``neck.norm.*``) the BEiT v2 layout: the final
    norm becomes ``neck.norm`` and the backbone has no ``ln1``.

    Raises:
        CheckpointKeyError: a name with no place in mmpretrain.
        ValueError: the neck's norm differs from the final norm (mmpretrain shares one).
    """
    heads = {v: k for k, v in _HEAD_NAMES[_check_kind(kind)].items()
             if not k.startswith(('neck.', 'head.layers.'))}
    v2 = bool(neck)
    if v2 and not all(k in official_state for k in ('norm.weight', 'norm.bias')):
        raise CheckpointKeyError('mmpretrain BEiT v2 takes its shared final norm from '
                                 'backbone.norm, which this state lacks',
                                 missing=['backbone.norm.weight', 'backbone.norm.bias'])
    out: StateDict = OrderedDict()
    unknown: List[str] = []
    for k, v in official_state.items():
        m = _BLOCK.match(k)
        if v2 and k in ('norm.weight', 'norm.bias'):
            shared = 'neck.' + k
            if not torch.equal(neck[shared], v):
                raise ValueError(f'mmpretrain BEiT v2 shares one final norm between the last layer '
                                 f'and the patch aggregation, but beitlab backbone.{k} and {shared} '
                                 'differ; export without the neck or make them equal')
            out[shared] = v
        elif k in heads:
            out[heads[k]] = v
        elif m is not None and m.group(2) in _LAYER_FROM_OFFICIAL:
            out[f'{BACKBONE}layers.{m.group(1)}.{_LAYER_FROM_OFFICIAL[m.group(2)]}'] = v
        elif k in _MODEL_FROM_OFFICIAL:
            out[BACKBONE + _MODEL_FROM_OFFICIAL[k]] = v
        else:
            unknown.append(k)
    for k, v in (neck or {}).items():
        m = _BEITLAB_NECK_BLOCK.match(k)
        if m is not None and m.group(2) in _LAYER_FROM_OFFICIAL:
            out[f'neck.patch_aggregation.{m.group(1)}.{_LAYER_FROM_OFFICIAL[m.group(2)]}'] = v
        elif k not in _NECK_NORM:
            unknown.append(k)
    if unknown:
        raise CheckpointKeyError(f'mmpretrain BEiT export: no place in {_MODEL_CLASS[kind]} for '
                                 f'{unknown}', unknown=unknown)
    return out


# ---------------------------------------------------------------------------- the Layout
_MODEL_CLASS = {'pretrain': 'BEiT (BEiTPretrainViT)', 'classifier': 'ImageClassifier (BEiTViT)'}


def _check_kind(kind: str) -> str:
    if kind not in _HEAD_NAMES:
        raise ValueError(f'the mmpretrain BEiT layout has no kind {kind!r}; expected one of '
                         f'{sorted(_HEAD_NAMES)}')
    return kind


def detect(state: Mapping[str, Tensor]) -> bool:
    """mmcv's patch embedding name under ``backbone.``."""
    return f'{BACKBONE}patch_embed.projection.weight' in state


def to_beitlab(state: Mapping[str, Tensor], kind: str) -> Tuple[StateDict, Arch]:
    """mmpretrain state dict of ``kind`` -> (beitlab state dict, arch), strictly; a BEiT v2
    pre-training state also gives ``neck.*`` of beitlab's ``BEiTv2``."""
    official_state, neck, source = mmpretrain_to_official(state, kind)
    try:
        beitlab, arch = official.LAYOUT.to_beitlab(official_state, kind)
    except CheckpointKeyError as err:
        unknown = [source.get(k, k) for k in err.unknown]
        missing = [n for k in err.missing for n in _mmpretrain_names(k, kind)]
        raise CheckpointKeyError(
            f'mmpretrain BEiT state dict ({_MODEL_CLASS[kind]}): '
            + '; '.join(f'{what} {keys}' for what, keys in
                        (('unknown keys', unknown), ('missing keys', missing)) if keys),
            unknown=unknown, missing=missing) from err
    beitlab.update(neck)
    return beitlab, arch


def from_beitlab(state: Mapping[str, Tensor], kind: str, arch: Arch) -> StateDict:
    """beitlab state dict of ``kind`` (a ``BEiTv2`` with its ``neck.*`` included) ->
    mmpretrain state dict with its index buffers, strictly loadable into mmpretrain."""
    neck = OrderedDict((k, v) for k, v in state.items() if k.startswith('neck.'))
    if neck and kind != 'pretrain':
        raise CheckpointKeyError(f'mmpretrain classifiers have no neck; {list(neck)} have no place',
                                 unknown=list(neck))
    rest = OrderedDict((k, v) for k, v in state.items() if not k.startswith('neck.'))
    if neck and not all(k in neck for k in _NECK_NORM):
        raise CheckpointKeyError(f'a BEiT v2 neck needs {list(_NECK_NORM)}',
                                 missing=[k for k in _NECK_NORM if k not in neck])
    return official_to_mmpretrain(official.LAYOUT.from_beitlab(rest, kind, arch), kind, neck)


LAYOUT = Layout(
    name='mmpretrain',
    description='mmpretrain: BEiT / BEiT v2 (BEiTPretrainViT, BEiTV1Head / BEiTV2Head, '
                'BEiTV2Neck) and ImageClassifier (BEiTViT, LinearClsHead)',
    detect=detect, to_beitlab=to_beitlab, from_beitlab=from_beitlab)
