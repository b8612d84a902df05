"""The official BEiT / BEiT v2 layouts (``microsoft/unilm``, ``beit/`` and ``beit2/``).

- ``kind='pretrain'``: ``VisionTransformerForMaskedImageModeling``
  (``beit/modeling_pretrain.py``): the backbone names of
  :class:`~beitlab.models.backbones.beit_vit.BEiTViT` at top level (``mask_token`` included),
  the MIM head as ``lm_head.{weight,bias}`` and persistent ``relative_position_index`` buffers.
- ``kind='classifier'``: the fine-tuning ``VisionTransformer`` (``beit/modeling_finetune.py``):
  the same backbone names without ``mask_token``, ``fc_norm.*`` for mean pooling, the head as
  ``head.{weight,bias}`` and an index buffer next to every bias table.

Released files hold ``{'model': {...}}`` (:mod:`beitlab.checkpoint.unwrap` finds it). The
beitlab side is described in :mod:`beitlab.checkpoint.layouts.base`: ``backbone.<name>``,
``head.fc.*`` and no index buffers (they are rebuilt from the grid; an imported one is
checked against the rebuilt one first).

Both directions validate the names: a key that is not a BEiT parameter, or a parameter that
a consistent BEiT model must have but is absent, is a :class:`CheckpointKeyError` naming it.
"""
import math
import re
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from beitlab.ops.relative_position import build_relative_position_index

from ..errors import CheckpointKeyError
from ..unwrap import unwrap_state_dict
from .base import Arch, Layout, StateDict

__all__ = [
    'LAYOUT', 'CheckpointKeyError', 'validate_official_state_dict', 'infer_backbone_config',
    'official_to_beitlab', 'beitlab_to_official', 'official_classifier_to_beitlab',
    'beitlab_classifier_to_official', 'DEFAULT_EXPORT_IGNORED_PREFIXES'
]

BACKBONE_PREFIX = 'backbone.'
HEAD_MAP = {'lm_head.weight': 'head.fc.weight', 'lm_head.bias': 'head.fc.bias'}
CLASSIFIER_HEAD_MAP = {'head.weight': 'head.fc.weight', 'head.bias': 'head.fc.bias'}
INDEX_SUFFIX = 'relative_position_index'
TABLE_SUFFIX = 'relative_position_bias_table'
# Parts of a beitlab checkpoint that have no official counterpart: the frozen tokenizer
# inside the target generator and the preprocessor's buffers.
DEFAULT_EXPORT_IGNORED_PREFIXES = ('target_generator.', 'data_preprocessor.')

_GLOBAL_KEYS = re.compile(
    r'^(cls_token|mask_token|pos_embed|patch_embed\.proj\.(weight|bias)'
    r'|rel_pos_bias\.relative_position_bias_table|(norm|fc_norm)\.(weight|bias))$')
_BLOCK_KEY = re.compile(r'^blocks\.(\d+)\.(.+)$')
_BLOCK_SUFFIXES = {
    'norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias', 'attn.qkv.weight',
    'attn.q_bias', 'attn.v_bias', 'attn.proj.weight', 'attn.proj.bias',
    'attn.relative_position_bias_table', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight',
    'mlp.fc2.bias', 'gamma_1', 'gamma_2'
}
_BLOCK_REQUIRED = ('norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.proj.weight',
                   'attn.proj.bias', 'norm2.weight', 'norm2.bias', 'mlp.fc1.weight',
                   'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias')
# optional per-block groups: if any block has one member, every block needs all of them
_BLOCK_GROUPS = (('attn.q_bias', 'attn.v_bias'), ('gamma_1', 'gamma_2'),
                 ('attn.relative_position_bias_table', ))
_INDEX_KEYS = re.compile(r'^(rel_pos_bias|blocks\.\d+\.attn)\.relative_position_index$')
# the tokens each kind's model always has (the fine-tuning model has no [MASK])
_REQUIRED_TOKENS = {'pretrain': ('cls_token', 'mask_token'), 'classifier': ('cls_token', )}
_HEADS = {'pretrain': HEAD_MAP, 'classifier': CLASSIFIER_HEAD_MAP}


def _is_backbone_key(name: str) -> bool:
    if _GLOBAL_KEYS.match(name):
        return True
    m = _BLOCK_KEY.match(name)
    return bool(m) and m.group(2) in _BLOCK_SUFFIXES


def _missing_backbone_keys(names: Iterable[str], kind: str = 'pretrain') -> List[str]:
    """Names a consistent BEiT backbone of ``kind`` needs given the ones present."""
    names = set(names)
    missing = [k for k in (*_REQUIRED_TOKENS[kind], 'patch_embed.proj.weight',
                           'patch_embed.proj.bias') if k not in names]
    blocks = sorted({int(m.group(1)) for m in map(_BLOCK_KEY.match, names) if m})
    num_layers = blocks[-1] + 1 if blocks else 0
    if num_layers == 0:
        missing.append('blocks.0.*')
    present_suffixes = {m.group(2) for m in map(_BLOCK_KEY.match, names) if m}
    needed = list(_BLOCK_REQUIRED)
    for group in _BLOCK_GROUPS:
        if any(s in present_suffixes for s in group):
            needed.extend(group)
    for i in range(num_layers):
        missing.extend(f'blocks.{i}.{s}' for s in needed if f'blocks.{i}.{s}' not in names)
    for pair in (('norm.weight', 'norm.bias'), ('fc_norm.weight', 'fc_norm.bias')):
        if any(k in names for k in pair):
            missing.extend(k for k in pair if k not in names)
    return missing


def validate_official_state_dict(state_dict: Mapping[str, Any], allow_missing: bool = False,
                                 allow_unknown: bool = False, kind: str = 'pretrain'
                                 ) -> Tuple[List[str], List[str]]:
    """Check that ``state_dict`` holds an official BEiT model of ``kind``.

    Returns:
        ``(unknown, missing)`` key names (both empty when the check passes strictly).
    Raises:
        CheckpointKeyError: unknown keys (unless ``allow_unknown``) or missing keys
            (unless ``allow_missing``), every one named.
    """
    heads = _HEADS[kind]
    unknown = [k for k in state_dict
               if not (_is_backbone_key(k) or k in heads or _INDEX_KEYS.match(k))]
    present = [k for k in state_dict if _is_backbone_key(k)]
    missing = _missing_backbone_keys(present, kind)
    missing.extend(k for k in heads if any(h in state_dict for h in heads)
                   and k not in state_dict)
    what = 'official BEiT ' + ('pre-training' if kind == 'pretrain' else 'classifier') + \
        ' checkpoint'
    _raise_if_bad(unknown, missing, allow_missing, allow_unknown, what)
    return unknown, missing


def _raise_if_bad(unknown: List[str], missing: List[str], allow_missing: bool,
                  allow_unknown: bool, what: str) -> None:
    problems = []
    if unknown and not allow_unknown:
        problems.append(f'unknown keys {unknown}')
    if missing and not allow_missing:
        problems.append(f'missing keys {missing}')
    if problems:
        raise CheckpointKeyError(f'{what}: ' + '; '.join(problems),
                                 unknown=unknown if not allow_unknown else (),
                                 missing=missing if not allow_missing else ())


def _square_side(n: int) -> Optional[int]:
    side = math.isqrt(n)
    return side if side * side == n else None


def _infer_grid(state_dict: Mapping[str, Tensor], num_extra_tokens: int) -> Optional[List[int]]:
    """Square patch grid from an index buffer, the position embedding or a bias table;
    None when there is none of them or the grid is not square (then ``meta`` must say)."""
    sides = []
    sides += [_square_side(v.shape[0] - 1) for k, v in state_dict.items()
              if k.endswith(INDEX_SUFFIX)]
    if 'pos_embed' in state_dict:
        sides.append(_square_side(state_dict['pos_embed'].shape[1] - num_extra_tokens))
    for k, v in state_dict.items():
        if k.endswith(TABLE_SUFFIX):
            side = _square_side(v.shape[0] - 3)  # (2H-1)^2 + 3 entries
            sides.append((side + 1) // 2 if side is not None else None)
    side = sides[0] if sides else None
    return [side, side] if side is not None else None


def infer_backbone_config(state_dict: Mapping[str, Tensor]) -> Arch:
    """``BEiTViT`` settings (plain types) that fit a state dict with official backbone names.

    Returns:
        ``arch`` (``embed_dims``, ``num_layers``, ``num_heads``, ``feedforward_channels``),
        ``img_size`` and ``grid`` (square grids; None otherwise), ``patch_size``,
        ``in_channels`` and the flags ``use_abs_pos_emb``, ``use_shared_rel_pos_bias``,
        ``use_rel_pos_bias``, ``layer_scale``, ``qv_bias``, ``with_cls_token``,
        ``with_mask_token``. ``num_heads`` comes from a relative position bias table; without
        one it cannot be read from the weights and is None. ``layer_scale`` is only a flag
        (the trained gammas are in the weights).
    """
    sd = state_dict
    blocks = {int(m.group(1)) for m in map(_BLOCK_KEY.match, sd) if m}
    embed_dims = int(sd['patch_embed.proj.weight'].shape[0])
    patch_size = int(sd['patch_embed.proj.weight'].shape[-1])
    num_heads = None
    for k, v in sd.items():
        if k.endswith(TABLE_SUFFIX):
            num_heads = int(v.shape[1])
            break
    grid = _infer_grid(sd, num_extra_tokens=1 if 'cls_token' in sd else 0)
    return dict(
        arch=dict(embed_dims=embed_dims, num_layers=len(blocks), num_heads=num_heads,
                  feedforward_channels=int(sd['blocks.0.mlp.fc1.weight'].shape[0])
                  if 'blocks.0.mlp.fc1.weight' in sd else None),
        img_size=[g * patch_size for g in grid] if grid else None,
        grid=grid,
        patch_size=patch_size,
        in_channels=int(sd['patch_embed.proj.weight'].shape[1]),
        use_abs_pos_emb='pos_embed' in sd,
        use_shared_rel_pos_bias='rel_pos_bias.relative_position_bias_table' in sd,
        use_rel_pos_bias='blocks.0.attn.relative_position_bias_table' in sd,
        layer_scale='blocks.0.gamma_1' in sd,
        qv_bias='blocks.0.attn.q_bias' in sd,
        with_cls_token='cls_token' in sd,
        with_mask_token='mask_token' in sd,
    )


def _check_index(name: str, index: Tensor, grid: Optional[Sequence[int]]) -> None:
    """A stored official index must equal the one we rebuild (it is dropped on import)."""
    if grid is None:
        return
    rebuilt = build_relative_position_index(tuple(grid))
    if index.shape != rebuilt.shape or not torch.equal(index.to(rebuilt.dtype), rebuilt):
        raise ValueError(f'{name} of shape {tuple(index.shape)} differs from the official '
                         f'layout rebuilt for grid {tuple(grid)}')


def _import(official: Mapping[str, Tensor], kind: str, allow_missing: bool,
            allow_unknown: bool) -> Tuple[StateDict, Arch, List[str]]:
    """Official state dict of ``kind`` -> (beitlab state dict, arch, dropped unknown keys)."""
    unknown, _ = validate_official_state_dict(official, allow_missing, allow_unknown, kind)
    config = infer_backbone_config(official)
    heads = _HEADS[kind]
    state_dict: StateDict = OrderedDict()
    for k, v in official.items():
        if _INDEX_KEYS.match(k):
            _check_index(k, v, config['grid'])
        elif k in heads:
            state_dict[heads[k]] = v
        elif k not in unknown:
            state_dict[BACKBONE_PREFIX + k] = v
    return state_dict, config, list(unknown)


def official_to_beitlab(official: Mapping[str, Tensor], allow_missing: bool = False,
                        allow_unknown: bool = False) -> Tuple[StateDict, Dict[str, Any]]:
    """Official pre-training state dict -> (beitlab state dict, meta).

    ``lm_head.*`` -> ``head.fc.*``, backbone names -> ``backbone.<name>``, index buffers
    dropped (after checking they match the rebuilt layout); unknown keys are dropped
    only with ``allow_unknown``. ``meta`` holds ``backbone`` (:func:`infer_backbone_config`),
    ``vocab_size``, the names of the index buffers and the dropped unknown keys.
    """
    state_dict, config, unknown = _import(official, 'pretrain', allow_missing, allow_unknown)
    vocab = official.get('lm_head.weight')
    meta = dict(converted_from='official', kind='pretrain',
                backbone=config,
                vocab_size=int(vocab.shape[0]) if vocab is not None else None,
                index_buffers=[k for k in official if _INDEX_KEYS.match(k)],
                dropped_unknown_keys=unknown)
    return state_dict, meta


def _grid_for_export(official: Mapping[str, Tensor], meta: Optional[Mapping[str, Any]]
                     ) -> Optional[List[int]]:
    grid = None
    if meta and isinstance(meta.get('backbone'), Mapping):
        grid = meta['backbone'].get('grid')
    if grid is None:
        grid = _infer_grid(official, num_extra_tokens=1 if 'cls_token' in official else 0)
    return grid


def _with_index_buffers(official: Mapping[str, Tensor], grid: Optional[Sequence[int]],
                        names: Optional[Sequence[str]] = None) -> StateDict:
    """``official`` with the ``relative_position_index`` buffer the official model saves
    right after each bias table (its place in the official state dict); ``names``: only
    those buffers."""
    wanted = [k[:-len(TABLE_SUFFIX)] + INDEX_SUFFIX for k in official if k.endswith(TABLE_SUFFIX)]
    if names is not None:
        wanted = [n for n in wanted if n in set(names)]
    if wanted and grid is None:
        raise ValueError(f'cannot rebuild {wanted}: the patch grid is unknown (not square and '
                         "no meta['backbone']['grid']); export without index buffers")
    index = build_relative_position_index(tuple(grid)) if wanted else None
    out: StateDict = OrderedDict()
    for k, v in official.items():
        out[k] = v
        name = k[:-len(TABLE_SUFFIX)] + INDEX_SUFFIX if k.endswith(TABLE_SUFFIX) else None
        if name in wanted:
            out[name] = index.clone()
    return out


def _export(state_dict: Mapping[str, Tensor], kind: str, allow_missing: bool,
            allow_unknown: bool, ignored_prefixes: Sequence[str]) -> StateDict:
    """beitlab state dict -> official names of ``kind`` (no index buffers yet)."""
    heads = _HEADS[kind]
    unknown: List[str] = []
    official: StateDict = OrderedDict()
    head_inverse = {v: k for k, v in heads.items()}
    for k, v in state_dict.items():
        name = k[len(BACKBONE_PREFIX):] if k.startswith(BACKBONE_PREFIX) else None
        if name is not None and _is_backbone_key(name):
            if not (kind == 'classifier' and name == 'mask_token'):
                official[name] = v  # the fine-tuning model has no [MASK]: dropped by rule
        elif k in head_inverse:
            official[head_inverse[k]] = v
        elif not k.startswith(tuple(ignored_prefixes)):
            unknown.append(k)
    missing = _missing_backbone_keys(official, kind)
    missing.extend(head_inverse[k] for k in head_inverse
                   if any(h in state_dict for h in head_inverse) and k not in state_dict)
    missing = [heads[k] if k in heads else BACKBONE_PREFIX + k for k in missing]
    what = 'beitlab ' + ('pre-training' if kind == 'pretrain' else 'classifier') + ' checkpoint'
    _raise_if_bad(unknown, missing, allow_missing, allow_unknown, what)
    return official


def beitlab_to_official(state_dict: Mapping[str, Tensor],
                        meta: Optional[Mapping[str, Any]] = None,
                        with_index: bool = True, allow_missing: bool = False,
                        allow_unknown: bool = False,
                        ignored_prefixes: Sequence[str] = DEFAULT_EXPORT_IGNORED_PREFIXES
                        ) -> StateDict:
    """beitlab pre-training state dict -> official one (the value of the ``model`` key).

    Args:
        meta: the beitlab checkpoint's meta; its ``backbone.grid`` (written on import)
            fixes the grid of rebuilt index buffers, otherwise a square grid is inferred.
        with_index: add a ``relative_position_index`` buffer after each bias table, as the
            official model stores them. When ``meta['index_buffers']`` lists the buffers of
            the original official file, exactly those are written.
        ignored_prefixes: keys with no official counterpart, skipped silently.
    """
    official = _export(state_dict, 'pretrain', allow_missing, allow_unknown, ignored_prefixes)
    if not with_index:
        return official
    names = meta.get('index_buffers') if meta else None
    return _with_index_buffers(official, _grid_for_export(official, meta), names)


def official_classifier_to_beitlab(checkpoint: Mapping[str, Any]) -> StateDict:
    """Official fine-tuned BEiT (``head.{weight,bias}``, backbone keys bare; the state dict or
    a file's content, unwrapped by :func:`~beitlab.checkpoint.unwrap.unwrap_state_dict`) ->
    ``ImageClassifier`` keys (``backbone.*``, ``head.fc.*``), renamed without validation
    (:data:`LAYOUT` validates); the ``relative_position_index`` buffers are dropped."""
    out: StateDict = OrderedDict()
    for k, v in unwrap_state_dict(checkpoint, 'official classifier').items():
        if k.endswith(INDEX_SUFFIX):
            continue
        out[('head.fc.' + k[len('head.'):]) if k.startswith('head.') else BACKBONE_PREFIX + k] = v
    return out


def beitlab_classifier_to_official(checkpoint: Mapping[str, Any]) -> StateDict:
    """``ImageClassifier`` state dict (or a file's content) -> official fine-tuned BEiT layout
    (to save under ``{'model': ...}``), loadable with ``strict=True`` into the official
    fine-tuning ``VisionTransformer`` (``beit/modeling_finetune.py``): no ``mask_token``
    (that model has none), and the ``relative_position_index`` buffer it saves after every
    bias table (for the square grid the tables imply).

    Raises:
        CheckpointKeyError: a key that is neither ``backbone.*``, ``head.fc.*`` nor
            ``data_preprocessor.*``.
        ValueError: a bias table that is not the table of a square grid.
    """
    out: StateDict = OrderedDict()
    for k, v in unwrap_state_dict(checkpoint, 'beitlab classifier').items():
        if k == 'backbone.mask_token' or k.startswith('data_preprocessor.'):
            continue
        if k.startswith(BACKBONE_PREFIX):
            out[k[len(BACKBONE_PREFIX):]] = v
        elif k.startswith('head.fc.'):
            out['head.' + k[len('head.fc.'):]] = v
        else:
            raise CheckpointKeyError(f'{k!r} has no place in the official BEiT classifier layout',
                                     unknown=[k])
    return _with_index_buffers(out, _table_grid(out))


def _table_grid(official: Mapping[str, Tensor]) -> Optional[List[int]]:
    """The square grid of the first bias table (``(2H-1)^2 + 3`` rows), else as
    :func:`_infer_grid`."""
    for k, v in official.items():
        if k.endswith(TABLE_SUFFIX):
            side = _square_side(v.shape[0] - 3)
            if side is None or side % 2 == 0:
                raise ValueError(f'{k!r} of shape {tuple(v.shape)} is not the table of a square '
                                 'grid ((2H-1)^2 + 3 rows); the official layout needs its index')
            return [(side + 1) // 2] * 2
    return _infer_grid(official, num_extra_tokens=1 if 'cls_token' in official else 0)


# ---------------------------------------------------------------------------- the Layout
def detect(state: Mapping[str, Tensor]) -> bool:
    """Official backbone names at top level: ``patch_embed.proj.weight`` and ``blocks.{i}.*``
    (timm's BEiT uses the same names and is read the same way)."""
    return 'patch_embed.proj.weight' in state and any(
        _BLOCK_KEY.match(k) and _is_backbone_key(k) for k in state)


def to_beitlab(state: Mapping[str, Tensor], kind: str) -> Tuple[StateDict, Arch]:
    """Official state dict of ``kind`` -> (beitlab state dict, arch), strictly."""
    beitlab, arch, _ = _import(state, _check_kind(kind), False, False)
    return beitlab, arch


def from_beitlab(state: Mapping[str, Tensor], kind: str, arch: Arch) -> StateDict:
    """beitlab state dict of ``kind`` -> official one with its index buffers, strictly (the
    frozen tokenizer and the preprocessor's buffers are skipped; a classifier's
    ``mask_token`` is dropped, as the official fine-tuning model has none)."""
    official = _export(state, _check_kind(kind), False, False, DEFAULT_EXPORT_IGNORED_PREFIXES)
    return _with_index_buffers(official, _grid_for_export(official, {'backbone': arch or {}}))


def _check_kind(kind: str) -> str:
    if kind not in _HEADS:
        raise ValueError(f'the official BEiT layout has no kind {kind!r}; expected one of '
                         f'{sorted(_HEADS)}')
    return kind


LAYOUT = Layout(
    name='official',
    description='official BEiT / BEiT v2 (microsoft/unilm beit/, beit2/): '
                'VisionTransformerForMaskedImageModeling and the fine-tuning VisionTransformer',
    detect=detect,
    to_beitlab=to_beitlab,
    from_beitlab=from_beitlab,
)
