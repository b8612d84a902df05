"""Conversion between official BEiT pre-training checkpoints and beitlab checkpoints.

Official (``microsoft/unilm`` ``beit/``, ``VisionTransformerForMaskedImageModeling``):
``{'model': {name: tensor}}`` with the backbone names of
:class:`beitlab.models.backbones.beit_vit.BEiTViT` at top level, the MIM head as
``lm_head.{weight,bias}`` and persistent ``relative_position_index`` buffers.

beitlab: ``{'state_dict': {...}, 'meta': {...}}`` with ``backbone.<official name>``,
``head.fc.{weight,bias}`` (``weight: [V, D]``) and no index buffers (they are rebuilt
from the grid). Only tensors and plain Python types, so ``torch.load(...,
weights_only=True)`` reads it.

Both directions validate the names: a key that is not a BEiT parameter, or a
parameter that a consistent BEiT model must have but is absent, is reported by name.
"""
import math
import re
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from beitlab.ops.relative_position import build_relative_position_index
from beitlab.utils.checkpoint import safe_torch_load

__all__ = [
    'CheckpointKeyError', 'validate_official_state_dict', 'infer_backbone_config',
    'official_to_beitlab', 'beitlab_to_official', 'load_official_checkpoint',
    'load_beitlab_checkpoint',
    'DEFAULT_EXPORT_IGNORED_PREFIXES'
]

BACKBONE_PREFIX = 'backbone.'
HEAD_MAP = {'lm_head.weight': 'head.fc.weight', 'lm_head.bias': 'head.fc.bias'}
INDEX_SUFFIX = 'relative_position_index'
# Parts of a beitlab BEiT checkpoint that have no official counterpart: the frozen
# tokenizer inside the target generator and the preprocessor's buffers.
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


class CheckpointKeyError(KeyError):
    """Unknown or missing keys in a checkpoint; ``unknown`` and ``missing`` list them."""

    def __init__(self, message: str, unknown: Sequence[str] = (), missing: Sequence[str] = ()):
        super().__init__(message)
        self.unknown = list(unknown)
        self.missing = list(missing)

    def __str__(self) -> str:
        return str(self.args[0])


def _is_backbone_key(name: str) -> bool:
    if _GLOBAL_KEYS.match(name):
        return True
    m = _BLOCK_KEY.match(name)
    return bool(m) and m.group(2) in _BLOCK_SUFFIXES


def _missing_backbone_keys(names: Iterable[str]) -> List[str]:
    """Names a consistent BEiT backbone needs given the ones present."""
    names = set(names)
    missing = [k for k in ('cls_token', 'mask_token', 'patch_embed.proj.weight',
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


def validate_official_state_dict(state_dict: Dict[str, Any], allow_missing: bool = False,
                                 allow_unknown: bool = False) -> Tuple[List[str], List[str]]:
    """Check that ``state_dict`` holds an official BEiT pre-training model.

    Returns:
        ``(unknown, missing)`` key names (both empty when the check passes strictly).
    Raises:
        CheckpointKeyError: unknown keys (unless ``allow_unknown``) or missing keys
            (unless ``allow_missing``), every one named.
    """
    unknown = [k for k in state_dict
               if not (_is_backbone_key(k) or k in HEAD_MAP or _INDEX_KEYS.match(k))]
    present = [k for k in state_dict if _is_backbone_key(k)]
    missing = _missing_backbone_keys(present)
    missing.extend(k for k in HEAD_MAP if any(h in state_dict for h in HEAD_MAP)
                   and k not in state_dict)
    _raise_if_bad(unknown, missing, allow_missing, allow_unknown, 'official BEiT checkpoint')
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


def _infer_grid(state_dict: Dict[str, Tensor], num_extra_tokens: int) -> Optional[List[int]]:
    """Square patch grid from an index buffer, the position embedding or a bias table;
    None when there is none of them or the grid is not square (then ``meta`` must say)."""
    sides = []
    sides += [_square_side(v.shape[0] - 1) for k, v in state_dict.items()
              if k.endswith(INDEX_SUFFIX)]
    if 'pos_embed' in state_dict:
        sides.append(_square_side(state_dict['pos_embed'].shape[1] - num_extra_tokens))
    for k, v in state_dict.items():
        if k.endswith('relative_position_bias_table'):
            side = _square_side(v.shape[0] - 3)  # (2H-1)^2 + 3 entries
            sides.append((side + 1) // 2 if side is not None else None)
    side = sides[0] if sides else None
    return [side, side] if side is not None else None


def infer_backbone_config(state_dict: Dict[str, Tensor]) -> Dict[str, Any]:
    """``BEiTViT`` keyword arguments (plain types) that fit an official state dict.

    ``num_heads`` comes from a relative position bias table; without one it cannot be
    read from the weights and is None. ``layer_scale`` is only a flag (the trained gammas
    are in the weights).
    """
    sd = state_dict
    blocks = {int(m.group(1)) for m in map(_BLOCK_KEY.match, sd) if m}
    embed_dims = int(sd['patch_embed.proj.weight'].shape[0])
    patch_size = int(sd['patch_embed.proj.weight'].shape[-1])
    num_heads = None
    for k, v in sd.items():
        if k.endswith('relative_position_bias_table'):
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
    )


def _check_index(name: str, index: Tensor, grid: Optional[Sequence[int]]) -> None:
    """A stored official index must equal the one we rebuild (it is dropped on import)."""
    if grid is None:
        return
    rebuilt = build_relative_position_index(tuple(grid))
    if index.shape != rebuilt.shape or not torch.equal(index.to(rebuilt.dtype), rebuilt):
        raise ValueError(f'{name} of shape {tuple(index.shape)} differs from the official '
                         f'layout rebuilt for grid {tuple(grid)}')


def official_to_beitlab(official: Dict[str, Tensor], allow_missing: bool = False,
                        allow_unknown: bool = False) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
    """Official state dict -> (beitlab state dict, meta).

    ``lm_head.*`` -> ``head.fc.*``, backbone names -> ``backbone.<name>``, index buffers
    dropped (after checking they match the rebuilt layout); unknown keys are dropped
    only with ``allow_unknown``.
    """
    unknown, _ = validate_official_state_dict(official, allow_missing, allow_unknown)
    config = infer_backbone_config(official)
    state_dict: Dict[str, Tensor] = OrderedDict()
    for k, v in official.items():
        if _INDEX_KEYS.match(k):
            _check_index(k, v, config['grid'])
        elif k in HEAD_MAP:
            state_dict[HEAD_MAP[k]] = v
        elif k not in unknown:
            state_dict[BACKBONE_PREFIX + k] = v
    vocab = official.get('lm_head.weight')
    meta = dict(converted_from='official BEiT (microsoft/unilm beit)',
                backbone=config,
                vocab_size=int(vocab.shape[0]) if vocab is not None else None,
                index_buffers=[k for k in official if _INDEX_KEYS.match(k)],
                dropped_unknown_keys=list(unknown))
    return state_dict, meta


def beitlab_to_official(state_dict: Dict[str, Tensor], meta: Optional[Dict[str, Any]] = None,
                        with_index: bool = True, allow_missing: bool = False,
                        allow_unknown: bool = False,
                        ignored_prefixes: Sequence[str] = DEFAULT_EXPORT_IGNORED_PREFIXES
                        ) -> Dict[str, Tensor]:
    """beitlab state dict -> official state dict (the value of the ``model`` key).

    Args:
        meta: the beitlab checkpoint's meta; its ``backbone.grid`` (written on import)
            fixes the grid of rebuilt index buffers, otherwise a square grid is inferred.
        with_index: add ``relative_position_index`` buffers next to each bias table, as
            the official model stores them. When ``meta['index_buffers']`` lists the
            buffers of the original official file, exactly those are written.
        ignored_prefixes: keys with no official counterpart, skipped silently.
    """
    unknown: List[str] = []
    official: Dict[str, Tensor] = OrderedDict()
    head_inverse = {v: k for k, v in HEAD_MAP.items()}
    for k, v in state_dict.items():
        if k.startswith(BACKBONE_PREFIX) and _is_backbone_key(k[len(BACKBONE_PREFIX):]):
            official[k[len(BACKBONE_PREFIX):]] = v
        elif k in head_inverse:
            official[head_inverse[k]] = v
        elif not k.startswith(tuple(ignored_prefixes)):
            unknown.append(k)
    missing = _missing_backbone_keys(official)
    missing.extend(head_inverse[k] for k in head_inverse
                   if any(h in state_dict for h in head_inverse) and k not in state_dict)
    missing = [HEAD_MAP[k] if k in HEAD_MAP else BACKBONE_PREFIX + k for k in missing]
    _raise_if_bad(unknown, missing, allow_missing, allow_unknown, 'beitlab checkpoint')
    if with_index:
        grid = None
        if meta and isinstance(meta.get('backbone'), dict):
            grid = meta['backbone'].get('grid')
        if grid is None:
            grid = _infer_grid(official, num_extra_tokens=1 if 'cls_token' in official else 0)
        names = [k[:-len('relative_position_bias_table')] + INDEX_SUFFIX
                 for k in official if k.endswith('relative_position_bias_table')]
        if meta and meta.get('index_buffers') is not None:
            names = [n for n in meta['index_buffers'] if n in names]
        if names:
            if grid is None:
                raise ValueError(f'cannot rebuild {names}: the patch grid is unknown (not square '
                                 "and no meta['backbone']['grid']); export with with_index=False")
            index = build_relative_position_index(tuple(grid))
            for name in names:
                official[name] = index.clone()
    return official


def load_official_checkpoint(path: str) -> Dict[str, Tensor]:
    """The ``model`` (or ``module``) state dict of an official checkpoint file."""
    ckpt = safe_torch_load(path)
    if isinstance(ckpt, dict):
        for key in ('model', 'module'):
            if key in ckpt and isinstance(ckpt[key], dict):
                return ckpt[key]
    found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
    raise KeyError(f'{path!r} is not an official BEiT checkpoint: expected a dict with key '
                   f"'model', found {found}")


def load_beitlab_checkpoint(path: str) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
    """``(state_dict, meta)`` of a beitlab (or mmengine Runner) checkpoint file."""
    ckpt = safe_torch_load(path)  # its allow-list covers mmengine Runner checkpoints
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get('state_dict'), dict):
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise KeyError(f"{path!r} is not a beitlab checkpoint: expected a dict with key "
                       f"'state_dict', found {found}")
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    return ckpt['state_dict'], meta
