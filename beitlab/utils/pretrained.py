"""Load a pre-trained BEiT backbone for fine-tuning, and convert classifiers to and from the
official BEiT layout (Bao et al., 2021, Sec. 3 and App. "fine-tuning"; spec V.A.2).

Fine-tuning starts from the MIM-pre-trained encoder with the MIM head removed. Official BEiT
pre-trains with one relative position bias shared by all layers and fine-tunes with one
table per layer, each initialised from the shared table; when the fine-tuning resolution
differs, the relative position tables and the absolute position embedding are interpolated
to the new patch grid. Segmentation and detection adapters reuse
:func:`load_pretrained_backbone`.
"""
import math
import re
from typing import Dict, Mapping, Optional, Tuple, Union

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from beitlab.models.backbones.rel_pos_bias import resize_pos_embed, resize_rel_pos_bias_table
from beitlab.utils.checkpoint import safe_torch_load

__all__ = ['load_pretrained_backbone', 'extract_backbone_state', 'official_classifier_to_beitlab',
           'beitlab_classifier_to_official']

SHARED_TABLE = 'rel_pos_bias.relative_position_bias_table'
MIM_HEAD_PREFIXES = ('head.', 'lm_head.')
_BLOCK_TABLE = re.compile(r'^blocks\.(\d+)\.attn\.relative_position_bias_table$')


def _unwrap(checkpoint: Mapping) -> Dict[str, Tensor]:
    """The state dict inside an mmengine (``state_dict``), official (``model``/``module``) or
    plain checkpoint."""
    for key in ('state_dict', 'model', 'module'):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            return dict(checkpoint[key])
    return dict(checkpoint)


def extract_backbone_state(state: Mapping[str, Tensor], prefix: str = 'backbone.'
                           ) -> Tuple[Dict[str, Tensor], list]:
    """Backbone entries with official names, and the names dropped.

    If any key starts with ``prefix`` (a beitlab checkpoint) only those keys are kept, with
    the prefix stripped; everything else (MIM head, target generator, ...) is dropped.
    Otherwise (an official checkpoint) every key is kept except the MIM/classification head
    (``head.*``, ``lm_head.*``). ``relative_position_index`` buffers are always dropped
    (rebuilt by the backbone).
    """
    if prefix and any(k.startswith(prefix) for k in state):
        kept = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        dropped = [k for k in state if not k.startswith(prefix)]
    else:
        kept = {k: v for k, v in state.items() if not k.startswith(MIM_HEAD_PREFIXES)}
        dropped = [k for k in state if k.startswith(MIM_HEAD_PREFIXES)]
    for k in [k for k in kept if k.endswith('relative_position_index')]:
        dropped.append(k)
        del kept[k]
    return kept, dropped


def _square_grid_from_table(rows: int, key: str) -> Tuple[int, int]:
    side = math.isqrt(rows - 3)
    if side * side != rows - 3 or side % 2 == 0:
        raise ValueError(f'{key}: a table of {rows} rows is not (2H-1)^2 + 3 for a square grid; '
                         f'pass src_grid for non-square grids')
    return ((side + 1) // 2, ) * 2


def _square_grid_from_pos(tokens: int, key: str) -> Tuple[int, int]:
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f'{key}: {tokens} patch positions are not a square grid; pass src_grid')
    return (side, side)


def load_pretrained_backbone(backbone: nn.Module,
                             path_or_state: Union[str, Mapping[str, Tensor]],
                             prefix: str = 'backbone.',
                             src_grid: Optional[Tuple[int, int]] = None,
                             logger: str = 'current') -> Dict[str, list]:
    """Load a beitlab MIM checkpoint or an official BEiT checkpoint into ``backbone``.

    Steps: unwrap (``state_dict``/``model``), keep backbone keys (see
    :func:`extract_backbone_state`), copy the shared relative position bias into every
    ``blocks.i.attn.relative_position_bias_table`` when the target has per-layer tables and no
    shared one, interpolate relative position tables and ``pos_embed`` to the target grid,
    load non-strictly, and log missing / unexpected keys.

    Args:
        backbone: a :class:`~beitlab.models.backbones.beit_vit.BEiTViT` (needs ``grid`` and
            ``num_extra_tokens`` when grids differ).
        path_or_state: checkpoint file (loaded with ``weights_only=True``) or a state dict.
        prefix: prefix of the backbone keys in a beitlab checkpoint.
        src_grid: patch grid of the checkpoint (default: inferred, assuming a square grid).
    Returns:
        dict with lists ``missing_keys``, ``unexpected_keys``, ``dropped_keys`` (MIM head and
        other non-backbone entries), ``copied_keys`` (per-layer tables made from the shared
        one) and ``resized_keys``.
    Raises:
        ValueError: a tensor whose shape still differs from the target after interpolation.
    """
    source = path_or_state if isinstance(path_or_state, str) else '<state dict>'
    checkpoint = safe_torch_load(path_or_state) if isinstance(path_or_state, str) else path_or_state
    state, dropped = extract_backbone_state(_unwrap(checkpoint), prefix)
    target = backbone.state_dict()
    copied, resized = [], []

    # shared (pre-training) bias -> one table per layer (fine-tuning)
    per_layer_keys = [k for k in target if _BLOCK_TABLE.match(k)]
    if SHARED_TABLE in state and SHARED_TABLE not in target and per_layer_keys:
        shared = state.pop(SHARED_TABLE)
        for k in per_layer_keys:
            if k not in state:
                state[k] = shared.clone()
                copied.append(k)

    # interpolate to the target grid
    dst_grid = tuple(getattr(backbone, 'grid', ()))
    for key in list(state):
        if key not in target or state[key].shape == target[key].shape:
            continue
        value = state[key]
        if key.endswith('relative_position_bias_table') and value.dim() == 2 and dst_grid:
            grid = tuple(src_grid) if src_grid else _square_grid_from_table(value.shape[0], key)
            state[key] = resize_rel_pos_bias_table(value, grid, dst_grid)
            resized.append(f'{key}: {tuple(value.shape)} -> {tuple(state[key].shape)}')
        elif key == 'pos_embed' and dst_grid:
            extra = int(getattr(backbone, 'num_extra_tokens', 1))
            grid = tuple(src_grid) if src_grid else _square_grid_from_pos(value.shape[1] - extra, key)
            state[key] = resize_pos_embed(value, grid, dst_grid, num_extra_tokens=extra)
            resized.append(f'{key}: {tuple(value.shape)} -> {tuple(state[key].shape)}')
        if state[key].shape != target[key].shape:
            raise ValueError(f'{source}: {key} has shape {tuple(state[key].shape)} but the backbone '
                             f'expects {tuple(target[key].shape)} (check arch / patch_size / '
                             f'in_channels)')

    result = backbone.load_state_dict(state, strict=False)
    report = dict(missing_keys=list(result.missing_keys),
                  unexpected_keys=list(result.unexpected_keys), dropped_keys=dropped,
                  copied_keys=copied, resized_keys=resized)
    print_log(
        f'loaded pre-trained backbone from {source}: {len(state) - len(report["unexpected_keys"])} '
        f'tensors; missing keys: {report["missing_keys"] or "none"}; unexpected keys: '
        f'{report["unexpected_keys"] or "none"}; dropped (head / non-backbone): {len(dropped)}'
        f'{" " + str(dropped[:8]) if dropped else ""}; shared rel-pos bias copied into '
        f'{len(copied)} layers; resized: {resized or "none"}', logger=logger)
    return report


def official_classifier_to_beitlab(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Official fine-tuned BEiT (``head.{weight,bias}``, backbone keys bare, optionally inside
    ``'model'``) -> ``ImageClassifier`` keys (``backbone.*``, ``head.fc.*``)."""
    out = {}
    for k, v in _unwrap(state).items():
        if k.endswith('relative_position_index'):
            continue
        out[('head.fc.' + k[len('head.'):]) if k.startswith('head.') else 'backbone.' + k] = v
    return out


def beitlab_classifier_to_official(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """``ImageClassifier`` state dict -> official fine-tuned BEiT layout (to save under
    ``{'model': ...}``)."""
    out = {}
    for k, v in _unwrap(state).items():
        if k.startswith('backbone.'):
            out[k[len('backbone.'):]] = v
        elif k.startswith('head.fc.'):
            out['head.' + k[len('head.fc.'):]] = v
        elif k.startswith('data_preprocessor.'):
            continue
        else:
            raise KeyError(f'{k!r} has no place in the official BEiT classifier layout')
    return out
