"""Load a pre-trained BEiT backbone for fine-tuning, and convert classifiers to and from the
official BEiT layout (Bao et al., 2021, Sec. 2.6 and 3.1; official
``beit/run_class_finetuning.py``).

Fine-tuning starts from the MIM-pre-trained encoder with the MIM head removed. Official BEiT
pre-trains with one relative position bias shared by all layers and fine-tunes with one
table per layer, each initialised from the shared table; when the fine-tuning resolution
differs, the relative position tables and the absolute position embedding are interpolated
to the new patch grid. Segmentation and detection adapters reuse
:func:`load_pretrained_backbone`. Loading is strict after these adaptations and the
:func:`transfer_rules`: anything else that differs is an error with one table
(:mod:`beitlab.utils.strict_load`) unless the caller allows it.
"""
import math
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from mmengine.logging import print_log
from torch import Tensor, nn

from beitlab.utils.checkpoint import install_safe_checkpoint_loading, safe_torch_load
from beitlab.utils.strict_load import Allowance, AllowHint, load_state_dict_strict

__all__ = ['load_pretrained_backbone', 'extract_backbone_state', 'transfer_rules',
           'official_classifier_to_beitlab', 'beitlab_classifier_to_official']

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


def transfer_rules(state: Mapping[str, Tensor], target_keys: Iterable[str]
                   ) -> Tuple[Dict[str, Tensor], List[str], List[str]]:
    """The transfer rules for parts that the backbone's own configuration replaces.

    Official fine-tuning (``beit/run_class_finetuning.py``, ``beit/semantic_segmentation``)
    loads a pre-trained encoder into a backbone that differs on purpose in four places,
    and so does :func:`load_pretrained_backbone`:

    - the final ``norm.*`` is dropped when the backbone has none (``final_norm=False`` for
      detection, or ``out_type='avg_featmap'``, whose ``fc_norm`` replaces it);
    - ``fc_norm.*`` of a mean-pooling backbone starts at its initialisation when the
      checkpoint has none (a pre-training checkpoint never has one);
    - ``mask_token`` starts at its initialisation when the checkpoint has none (fine-tuned
      official files; the backbone reads it only under a mask, i.e. in pre-training);
    - ``mask_token`` of a pre-training checkpoint is dropped when the backbone has none
      (``with_mask_token=False``: the official fine-tuning model has no ``[MASK]``).

    Returns:
        the state without the dropped entries, the dropped keys (rules 1 and 4) and the keys
        that start at their initialisation (rules 2 and 3).
    """
    target_keys = set(target_keys)
    state = dict(state)
    dropped = [k for k in state if k.startswith('norm.') and k not in target_keys] \
        if 'norm.weight' in state and 'norm.weight' not in target_keys else []
    if 'mask_token' in state and 'mask_token' not in target_keys:
        dropped.append('mask_token')
    for k in dropped:
        del state[k]
    fresh = []
    if not any(k.startswith('fc_norm.') for k in state):
        fresh += sorted(k for k in target_keys if k.startswith('fc_norm.'))
    if 'mask_token' in target_keys and 'mask_token' not in state:
        fresh.append('mask_token')
    return state, dropped, fresh


def load_pretrained_backbone(backbone: nn.Module,
                             path_or_state: Union[str, Mapping[str, Tensor]],
                             prefix: str = 'backbone.',
                             logger: str = 'current',
                             allow_missing: Optional[Sequence[str]] = None,
                             allow_unexpected: Optional[Sequence[str]] = None,
                             allow_shape_mismatch: Optional[Sequence[str]] = None,
                             allow_hint: Optional[AllowHint] = None) -> Dict[str, list]:
    """Load a beitlab MIM checkpoint or an official BEiT checkpoint into ``backbone``, strictly.

    Steps: unwrap (``state_dict``/``model``), keep the backbone keys and drop the MIM head
    (see :func:`extract_backbone_state`), apply :func:`transfer_rules`, then load with
    :func:`beitlab.utils.strict_load.load_state_dict_strict`. The layout adaptation happens
    in ``BEiTViT._load_from_state_dict`` (so ``load_from`` and ``init_cfg=Pretrained`` get it
    too): the shared relative position bias is copied into every
    ``blocks.i.attn.relative_position_bias_table`` when the target has per-layer tables only,
    and position embeddings / bias tables of another square grid are interpolated. What
    still differs after these rules and adaptations is an error, unless allowed.

    Args:
        backbone: a :class:`~beitlab.models.backbones.beit_vit.BEiTViT` (or any module with
            the official BEiT parameter names).
        path_or_state: checkpoint file (loaded with ``weights_only=True``) or a state dict.
        prefix: prefix of the backbone keys in a beitlab checkpoint.
        allow_missing, allow_unexpected, allow_shape_mismatch: key patterns (backbone names
            without ``prefix``; glob or ``'re:'`` + regex) of further differences that may
            pass.
        allow_hint: where the caller's user sets those patterns (named in the error).
    Returns:
        dict with lists ``missing_keys`` (backbone tensors left at their initialisation, by
        a transfer rule or an allowance), ``unexpected_keys`` (checkpoint backbone tensors
        not loaded, the same way), ``shape_mismatch_keys`` (allowed, not loaded),
        ``dropped_keys`` (MIM head and other non-backbone entries, ``relative_position_index``
        buffers) and ``copied_keys`` (per-layer tables made from the shared one).
    Raises:
        StrictLoadError: a tensor whose shape differs from the target's after the
            adaptation (e.g. another ``embed_dims`` or ``patch_size``), or a missing or
            unexpected key, not covered by the rules or the allowances.
    """
    source = path_or_state if isinstance(path_or_state, str) else '<state dict>'
    if isinstance(path_or_state, str):
        install_safe_checkpoint_loading()  # checkpoints saved by mmengine carry its logging types
        checkpoint = safe_torch_load(path_or_state)
    else:
        checkpoint = path_or_state
    state, dropped = extract_backbone_state(_unwrap(checkpoint), prefix)
    target_keys = set(backbone.state_dict())
    state, rule_dropped, fresh = transfer_rules(state, target_keys)
    # the pre-training [MASK] embedding is dropped like the MIM head; an unused final norm
    # is reported as not loaded
    unused_norm = [k for k in rule_dropped if k != 'mask_token']
    dropped = dropped + [k for k in rule_dropped if k == 'mask_token']
    copied = []
    if SHARED_TABLE in state and SHARED_TABLE not in target_keys:
        copied = sorted((k for k in target_keys if _BLOCK_TABLE.match(k) and k not in state),
                        key=lambda k: int(_BLOCK_TABLE.match(k).group(1)))
    allowance = Allowance.from_lists(allow_missing, allow_unexpected, allow_shape_mismatch,
                                     where='pre-trained backbone allow')
    result = load_state_dict_strict(
        backbone, state, source, (*fresh, *allowance.missing), allowance.unexpected,
        allowance.shape_mismatch, allow_hint=allow_hint,
        target=f'the {type(backbone).__name__} backbone (after the transfer rules)', logger=logger)
    report = dict(missing_keys=list(result.missing_keys),
                  unexpected_keys=unused_norm + list(result.unexpected_keys),
                  shape_mismatch_keys=[m.key for m in result.shape_mismatches],
                  dropped_keys=dropped, copied_keys=copied)
    print_log(
        f'loaded pre-trained backbone from {source} (strict): left at init: '
        f'{report["missing_keys"] or "none"}; not loaded: '
        f'{report["unexpected_keys"] or "none"}; dropped (head / non-backbone): {len(dropped)}'
        f'{" " + str(dropped[:8]) if dropped else ""}; shared rel-pos bias copied into '
        f'{len(copied)} layers', logger=logger)
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


def _index_for_table(key: str, table: Tensor) -> Tensor:
    """The ``relative_position_index`` buffer official BEiT saves next to a bias table
    ``[(2H-1)(2W-1)+3, heads]`` of a square grid."""
    from beitlab.ops.relative_position import build_relative_position_index
    side = math.isqrt(table.shape[0] - 3)
    if side * side != table.shape[0] - 3 or side % 2 == 0:
        raise ValueError(f'{key!r} of shape {tuple(table.shape)} is not the table of a square '
                         'grid ((2H-1)^2 + 3 rows); the official layout needs its index')
    return build_relative_position_index((side + 1) // 2)


def beitlab_classifier_to_official(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """``ImageClassifier`` state dict -> official fine-tuned BEiT layout (to save under
    ``{'model': ...}``), loadable with ``strict=True`` into the official fine-tuning
    ``VisionTransformer`` (``beit/modeling_finetune.py``): no ``mask_token`` (that model has
    none), and the ``relative_position_index`` buffer it saves next to every bias table."""
    out = {}
    for k, v in _unwrap(state).items():
        if k == 'backbone.mask_token':
            continue
        if k.startswith('backbone.'):
            out[k[len('backbone.'):]] = v
            if k.endswith('relative_position_bias_table'):
                index_key = k[len('backbone.'):-len('bias_table')] + 'index'
                out[index_key] = _index_for_table(k, v)
        elif k.startswith('head.fc.'):
            out['head.' + k[len('head.fc.'):]] = v
        elif k.startswith('data_preprocessor.'):
            continue
        else:
            raise KeyError(f'{k!r} has no place in the official BEiT classifier layout')
    return out
