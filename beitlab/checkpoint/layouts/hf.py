"""The Hugging Face ``transformers`` BEiT layout (``transformers/models/beit/modeling_beit.py``).

``kind='pretrain'``: ``BeitForMaskedImageModeling``; ``kind='classifier'``:
``BeitForImageClassification``; a classifier state without a head is ``BeitBackbone``
(``add_fpn=False``, the segmentation backbone) or, without the ``beit.`` prefix, a bare
``BeitModel``. Inside ``beit.`` (``BeitModel``), transformers 5 module name -> official name:

- ``embeddings.cls_token``, ``embeddings.mask_token`` -> ``cls_token``, ``mask_token`` (both
  ``[1, 1, D]``; the mask token only with ``use_mask_token``);
- ``embeddings.position_embeddings`` -> ``pos_embed`` ``[1, 1+N, D]``
  (``use_absolute_position_embeddings``);
- ``embeddings.patch_embeddings.projection.*`` -> ``patch_embed.proj.*``;
- ``shared_position_bias.relative_position_bias_table`` ->
  ``rel_pos_bias.relative_position_bias_table`` (``use_shared_relative_position_bias``);
- ``layers.{i}.relative_position_bias.relative_position_bias_table`` ->
  ``blocks.{i}.attn.relative_position_bias_table`` (``use_relative_position_bias``);
- ``layers.{i}.attention.{q,k,v}_proj.weight`` -> the row blocks ``[q; k; v]`` of
  ``blocks.{i}.attn.qkv.weight`` ``[3D, D]``; ``q_proj.bias``, ``v_proj.bias`` ->
  ``attn.q_bias``, ``attn.v_bias`` (``k_proj`` has no bias: BEiT's k bias is fixed at zero);
- ``layers.{i}.attention.o_proj.*`` -> ``attn.proj.*``;
- ``layers.{i}.layernorm_before.*``, ``layernorm_after.*`` -> ``norm1.*``, ``norm2.*``;
- ``layers.{i}.mlp.fc1.*``, ``mlp.fc2.*`` -> ``mlp.fc1.*``, ``mlp.fc2.*``;
- ``layers.{i}.lambda_1``, ``lambda_2`` -> ``gamma_1``, ``gamma_2`` (layer scale, with
  ``layer_scale_init_value > 0``);
- ``layernorm.*`` -> ``norm.*`` (only with ``use_mean_pooling=False``);
- ``pooler.layernorm.*`` -> ``fc_norm.*`` (``use_mean_pooling``, in
  ``BeitForImageClassification``).

Outside ``beit.``: ``BeitForMaskedImageModeling`` has its own final ``layernorm.*`` (= ``norm``;
its ``BeitModel`` is built with ``use_mean_pooling=True`` so that ``beit.layernorm`` is an
identity) and the MIM head ``lm_head.*`` (= ``head.fc.*``, ``[V, D]``);
``BeitForImageClassification`` has ``classifier.*`` (= ``head.fc.*``).

Files: the published ``microsoft/beit-*`` files (``model.safetensors`` /
``pytorch_model.bin``) and every file ``save_pretrained`` writes, in transformers 4 and 5,
hold the transformers 4 module names (``beit.encoder.layer.{i}.attention.attention.query.*``,
``...attention.output.dense.*``, ``...intermediate.dense.*``, ``...output.dense.*``,
``...attention.attention.relative_position_bias.relative_position_bias_table``,
``beit.encoder.relative_position_bias.relative_position_bias_table``); the converter that
made the published files (``convert_beit_unilm_to_pytorch.py``) kept a
``relative_position_index`` next to each table. transformers 5 renames them on
loading (``conversion_mapping.py``, entry ``BeitModel``) and back on saving. The import
accepts both generations of names (an index buffer is checked against the official index,
then dropped). The export writes the transformers 5 names: they are what
``load_state_dict(strict=True)`` of the installed classes takes, and ``from_pretrained``
reads them as well; :func:`to_file_names` gives the file names, for transformers 4.

Numerics: ``BeitConfig`` defaults to ``layer_norm_eps=1e-12`` where BEiT uses 1e-6; the
weights do not depend on it, the outputs do: build the model with
:func:`beit_config_kwargs`, which sets 1e-6. transformers always has q and v biases, so a
backbone built with ``qv_bias=False`` has no transformers counterpart.

The names pass through the official layout (:mod:`beitlab.checkpoint.layouts.official`), which
validates them and infers the architecture; its errors are reported with the names used
here.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

from ..errors import CheckpointKeyError
from . import official
from .base import Arch, Layout, StateDict

__all__ = ['LAYOUT', 'hf_to_official', 'official_to_hf', 'to_file_names', 'beit_config_kwargs']

PREFIX = 'beit.'
INDEX_SUFFIX = 'relative_position_index'
_LAYER = re.compile(r'^layers\.(\d+)\.(.+)$')            # transformers 5
_LAYER_V4 = re.compile(r'^encoder\.layer\.(\d+)\.(.+)$')  # transformers 4, the files
_BLOCK = re.compile(r'^blocks\.(\d+)\.(.+)$')             # official

# one row per parameter of a BeitLayer: (transformers 5, transformers 4, official)
_LAYER_NAMES = (
    ('lambda_1', 'lambda_1', 'gamma_1'),
    ('lambda_2', 'lambda_2', 'gamma_2'),
    ('layernorm_before.weight', 'layernorm_before.weight', 'norm1.weight'),
    ('layernorm_before.bias', 'layernorm_before.bias', 'norm1.bias'),
    ('attention.q_proj.bias', 'attention.attention.query.bias', 'attn.q_bias'),
    ('attention.v_proj.bias', 'attention.attention.value.bias', 'attn.v_bias'),
    ('relative_position_bias.relative_position_bias_table',
     'attention.attention.relative_position_bias.relative_position_bias_table',
     'attn.relative_position_bias_table'),
    ('attention.o_proj.weight', 'attention.output.dense.weight', 'attn.proj.weight'),
    ('attention.o_proj.bias', 'attention.output.dense.bias', 'attn.proj.bias'),
    ('layernorm_after.weight', 'layernorm_after.weight', 'norm2.weight'),
    ('layernorm_after.bias', 'layernorm_after.bias', 'norm2.bias'),
    ('mlp.fc1.weight', 'intermediate.dense.weight', 'mlp.fc1.weight'),
    ('mlp.fc1.bias', 'intermediate.dense.bias', 'mlp.fc1.bias'),
    ('mlp.fc2.weight', 'output.dense.weight', 'mlp.fc2.weight'),
    ('mlp.fc2.bias', 'output.dense.bias', 'mlp.fc2.bias'),
)
# the three projections whose weights are the row blocks [q; k; v] of official attn.qkv.weight
_QKV_NAMES = (('attention.q_proj.weight', 'attention.attention.query.weight'),
              ('attention.k_proj.weight', 'attention.attention.key.weight'),
              ('attention.v_proj.weight', 'attention.attention.value.weight'))
_QKV = 'attn.qkv.weight'
_LAYER_INDEX_V4 = 'attention.attention.relative_position_bias.relative_position_index'
# the parameters of BeitModel outside its layers: (transformers 5, transformers 4, official)
_MODEL_NAMES = (
    ('embeddings.cls_token', 'embeddings.cls_token', 'cls_token'),
    ('embeddings.mask_token', 'embeddings.mask_token', 'mask_token'),
    ('embeddings.position_embeddings', 'embeddings.position_embeddings', 'pos_embed'),
    ('embeddings.patch_embeddings.projection.weight',
     'embeddings.patch_embeddings.projection.weight', 'patch_embed.proj.weight'),
    ('embeddings.patch_embeddings.projection.bias',
     'embeddings.patch_embeddings.projection.bias', 'patch_embed.proj.bias'),
    ('shared_position_bias.relative_position_bias_table',
     'encoder.relative_position_bias.relative_position_bias_table',
     'rel_pos_bias.relative_position_bias_table'),
    ('layernorm.weight', 'layernorm.weight', 'norm.weight'),
    ('layernorm.bias', 'layernorm.bias', 'norm.bias'),
    ('pooler.layernorm.weight', 'pooler.layernorm.weight', 'fc_norm.weight'),
    ('pooler.layernorm.bias', 'pooler.layernorm.bias', 'fc_norm.bias'),
)
_SHARED_INDEX_V4 = 'encoder.relative_position_bias.relative_position_index'
# the parameters outside BeitModel, by kind: transformers name -> official checkpoint name
_HEAD_NAMES = {
    'pretrain': {'layernorm.weight': 'norm.weight', 'layernorm.bias': 'norm.bias',
                 'lm_head.weight': 'lm_head.weight', 'lm_head.bias': 'lm_head.bias'},
    'classifier': {'classifier.weight': 'head.weight', 'classifier.bias': 'head.bias'},
}

_LAYER_TO_OFFICIAL = {v5: off for v5, _, off in _LAYER_NAMES}
_LAYER_V4_TO_V5 = {**{v4: v5 for v5, v4, _ in _LAYER_NAMES}, **{v4: v5 for v5, v4 in _QKV_NAMES}}
_LAYER_FROM_OFFICIAL = {off: v5 for v5, _, off in _LAYER_NAMES}
_MODEL_TO_OFFICIAL = {v5: off for v5, _, off in _MODEL_NAMES}
_MODEL_V4_TO_V5 = {v4: v5 for v5, v4, _ in _MODEL_NAMES}
_MODEL_FROM_OFFICIAL = {off: v5 for v5, _, off in _MODEL_NAMES}
_HEAD_FROM_OFFICIAL = {kind: {off: hf for hf, off in names.items()}
                       for kind, names in _HEAD_NAMES.items()}


def _model_key(inner: str) -> Tuple[Optional[str], Optional[int]]:
    """A ``BeitModel`` key (either generation) -> ``(official name, qkv part)``; the part
    (0, 1, 2 for q, k, v) is set for a projection weight, whose official name is then
    ``blocks.{i}.attn.qkv.weight``. ``(None, None)`` for a name that is not BEiT's."""
    m = _LAYER.match(inner) or _LAYER_V4.match(inner)
    if m is None:
        if inner == _SHARED_INDEX_V4:
            return f'rel_pos_bias.{INDEX_SUFFIX}', None
        name = _MODEL_V4_TO_V5.get(inner, inner)
        return _MODEL_TO_OFFICIAL.get(name), None
    block, suffix = f'blocks.{m.group(1)}.', m.group(2)
    if m.re is _LAYER_V4:
        if suffix == _LAYER_INDEX_V4:
            return f'{block}attn.{INDEX_SUFFIX}', None
        suffix = _LAYER_V4_TO_V5.get(suffix, suffix)
    for part, (v5, _) in enumerate(_QKV_NAMES):
        if suffix == v5:
            return block + _QKV, part
    name = _LAYER_TO_OFFICIAL.get(suffix)
    return (block + name if name else None), None


def _hf_names(name: str, kind: str) -> List[str]:
    """The transformers 5 key(s) holding an official name (for error messages)."""
    if name in _HEAD_FROM_OFFICIAL[kind]:
        return [_HEAD_FROM_OFFICIAL[kind][name]]
    m = _BLOCK.match(name)
    if m is None:
        return [PREFIX + _MODEL_FROM_OFFICIAL.get(name, name)]
    layer = f'{PREFIX}layers.{m.group(1)}.'
    if m.group(2) == _QKV:
        return [layer + v5 for v5, _ in _QKV_NAMES]
    return [layer + _LAYER_FROM_OFFICIAL.get(m.group(2), m.group(2))]


def hf_to_official(state: Mapping[str, Tensor], kind: str) -> Tuple[StateDict, Dict[str, str]]:
    """A transformers BEiT state dict (either generation of names) -> the official checkpoint
    of ``kind`` (``lm_head.*`` or ``head.*``, index buffers as found), and for each official
    name the transformers key it came from.

    Raises:
        CheckpointKeyError: keys that are not BEiT's, a parameter given twice, or a layer
            with only some of its q, k, v projections.
    """
    heads = _HEAD_NAMES[_check_kind(kind)]
    prefixed = any(k.startswith(PREFIX) for k in state)
    out: StateDict = OrderedDict()
    source: Dict[str, str] = {}
    qkv: Dict[str, Dict[int, Tensor]] = OrderedDict()
    unknown: List[str] = []
    twice: List[str] = []
    for k, v in state.items():
        part = None
        if prefixed and not k.startswith(PREFIX):
            name = heads.get(k)
        else:
            name, part = _model_key(k[len(PREFIX):] if prefixed else k)
        if name is None:
            unknown.append(k)
        elif part is not None:
            if part in qkv.setdefault(name, {}):
                twice.append(k)
            qkv[name][part] = v
            out.setdefault(name, v)  # the place of the joined weight
            source.setdefault(name, k)
        elif name in out:
            twice.append(f'{k} (and {source[name]}: both are official {name!r})')
        else:
            out[name], source[name] = v, k
    missing = []
    for name, parts in qkv.items():
        if len(parts) == 3:
            out[name] = torch.cat([parts[0], parts[1], parts[2]], dim=0)
        else:
            missing.extend(n for i, n in enumerate(_hf_names(name, kind)) if i not in parts)
    if unknown or twice or missing:
        problems = [f'{what} {keys}' for what, keys in (
            ('keys that are not BEiT parameters of a ' + _MODEL_CLASS[kind], unknown),
            ('parameters given twice', twice),
            ('missing q/k/v projections', missing)) if keys]
        hint = ' (a BeitForMaskedImageModeling with use_mean_pooling=False applies beit.layernorm ' \
            'and layernorm one after the other; BEiT has one final norm)' \
            if any("'norm." in t for t in twice) else ''
        raise CheckpointKeyError('Hugging Face BEiT state dict: ' + '; '.join(problems) + hint,
                                 unknown=unknown + twice, missing=missing)
    return out, source


def official_to_hf(official_state: Mapping[str, Tensor], kind: str) -> StateDict:
    """An official checkpoint of ``kind`` -> transformers 5 names (``beit.`` prefix), without
    index buffers (transformers builds the index itself).

    Raises:
        CheckpointKeyError: ``fc_norm`` in a pre-training state (``BeitForMaskedImageModeling``
            has no pooler) or a block without q/v biases; a name that is not BEiT's.
    """
    heads = _HEAD_FROM_OFFICIAL[_check_kind(kind)]
    out: StateDict = OrderedDict()
    unknown: List[str] = []
    blocks = set()
    for k, v in official_state.items():
        m = _BLOCK.match(k)
        if k.endswith(INDEX_SUFFIX):
            continue
        if k in heads:
            out[heads[k]] = v
        elif m is not None and m.group(2) == _QKV:
            blocks.add(m.group(1))
            for name, rows in zip(_hf_names(k, kind), v.chunk(3, dim=0)):
                out[name] = rows.clone()  # own storage: safetensors refuses shared tensors
        elif m is not None and m.group(2) in _LAYER_FROM_OFFICIAL:
            out[_hf_names(k, kind)[0]] = v
        elif k in _MODEL_FROM_OFFICIAL and not (kind == 'pretrain' and k.startswith('fc_norm.')):
            out[PREFIX + _MODEL_FROM_OFFICIAL[k]] = v
        else:
            unknown.append(k)
    no_bias = [f'blocks.{i}.attn.{b}' for i in sorted(blocks, key=int) for b in ('q_bias', 'v_bias')
               if f'blocks.{i}.attn.{b}' not in official_state]
    if unknown or no_bias:
        problems = []
        if unknown:
            problems.append(f'no place in {_MODEL_CLASS[kind]} for {unknown}')
        if no_bias:
            problems.append(f'transformers always has q and v biases; missing {no_bias}')
        raise CheckpointKeyError('Hugging Face BEiT export: ' + '; '.join(problems),
                                 unknown=unknown, missing=no_bias)
    return out


def to_file_names(state: Mapping[str, Tensor]) -> StateDict:
    """transformers 5 names -> the names of the files (``save_pretrained``, the Hub), which
    transformers 4 and 5 both read; other keys unchanged."""
    model_v4 = {v5: v4 for v4, v5 in _MODEL_V4_TO_V5.items()}
    layer_v4 = {v5: v4 for v4, v5 in _LAYER_V4_TO_V5.items()}
    out: StateDict = OrderedDict()
    for k, v in state.items():
        inner = k[len(PREFIX):] if k.startswith(PREFIX) else None
        m = _LAYER.match(inner) if inner is not None else None
        if m is not None:
            k = f'{PREFIX}encoder.layer.{m.group(1)}.{layer_v4.get(m.group(2), m.group(2))}'
        elif inner is not None:
            k = PREFIX + model_v4.get(inner, inner)
        out[k] = v
    return out


def beit_config_kwargs(state: Mapping[str, Tensor], kind: str, arch: Arch) -> Dict[str, Any]:
    """``BeitConfig`` keyword arguments for the transformers model a beitlab state dict of
    ``kind`` exports to (``arch`` as ``LAYOUT.to_beitlab`` returns it, or
    :func:`~beitlab.checkpoint.layouts.official.infer_backbone_config` of the official names).

    ``layer_norm_eps`` is BEiT's 1e-6; ``layer_scale_init_value`` only decides whether the
    layers have ``lambda_1/2`` (the trained values are in the weights).
    """
    a = arch['arch']
    if a.get('num_heads') is None:
        raise ValueError('the number of heads cannot be read from weights without a relative '
                         "position bias table; set arch['arch']['num_heads']")
    kwargs: Dict[str, Any] = dict(
        hidden_size=a['embed_dims'], num_hidden_layers=a['num_layers'],
        num_attention_heads=a['num_heads'], intermediate_size=a['feedforward_channels'],
        image_size=list(arch['img_size']) if arch.get('img_size') else None,
        patch_size=arch['patch_size'], num_channels=arch['in_channels'],
        use_mask_token='backbone.mask_token' in state and kind == 'pretrain',
        use_absolute_position_embeddings=bool(arch['use_abs_pos_emb']),
        use_relative_position_bias=bool(arch['use_rel_pos_bias']),
        use_shared_relative_position_bias=bool(arch['use_shared_rel_pos_bias']),
        layer_scale_init_value=0.1 if arch['layer_scale'] else 0.0,
        use_mean_pooling=kind == 'pretrain' or 'backbone.norm.weight' not in state,
        layer_norm_eps=1e-6)
    if kwargs['image_size'] is None:
        raise ValueError('the image size is unknown (non-square grid); set arch["img_size"]')
    head = state.get('head.fc.weight')
    if head is not None:
        kwargs['vocab_size' if kind == 'pretrain' else 'num_labels'] = int(head.shape[0])
    return kwargs


# ---------------------------------------------------------------------------- the Layout
_MODEL_CLASS = {'pretrain': 'BeitForMaskedImageModeling', 'classifier': 'BeitForImageClassification'}


def _check_kind(kind: str) -> str:
    if kind not in _HEAD_NAMES:
        raise ValueError(f'the Hugging Face BEiT layout has no kind {kind!r}; expected one of '
                         f'{sorted(_HEAD_NAMES)}')
    return kind


def detect(state: Mapping[str, Tensor]) -> bool:
    """A ``BeitModel`` patch embedding, with or without the ``beit.`` prefix."""
    key = 'embeddings.patch_embeddings.projection.weight'
    return key in state or PREFIX + key in state


def to_beitlab(state: Mapping[str, Tensor], kind: str) -> Tuple[StateDict, Arch]:
    """transformers state dict of ``kind`` -> (beitlab state dict, arch), strictly."""
    official_state, source = hf_to_official(state, kind)
    try:
        return official.LAYOUT.to_beitlab(official_state, kind)
    except CheckpointKeyError as err:
        unknown = [source.get(k, k) for k in err.unknown]
        missing = [n for k in err.missing for n in _hf_names(k, kind)]
        raise CheckpointKeyError(
            f'Hugging Face BEiT state dict ({_MODEL_CLASS[kind]}): '
            + '; '.join(f'{what} {keys}' for what, keys in
                        (('unknown keys', unknown), ('missing keys', missing)) if keys),
            unknown=unknown, missing=missing) from err


def from_beitlab(state: Mapping[str, Tensor], kind: str, arch: Arch) -> StateDict:
    """beitlab state dict of ``kind`` -> transformers 5 names, strictly loadable into the
    model built from :func:`beit_config_kwargs` (``BeitForMaskedImageModeling``,
    ``BeitForImageClassification`` or, without a head, ``BeitBackbone``; a bare ``BeitModel``
    takes the keys without the ``beit.`` prefix, which ``from_pretrained`` strips itself)."""
    return official_to_hf(official.LAYOUT.from_beitlab(state, kind, arch), kind)


LAYOUT = Layout(
    name='hf',
    description='Hugging Face transformers: BeitForMaskedImageModeling, '
                'BeitForImageClassification, BeitBackbone / BeitModel',
    detect=detect, to_beitlab=to_beitlab, from_beitlab=from_beitlab)
