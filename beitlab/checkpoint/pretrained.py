"""Load a pre-trained BEiT backbone for fine-tuning (Bao et al., 2021, Sec. 2.6 and 3.1;
official ``beit/run_class_finetuning.py``).

Fine-tuning starts from the MIM-pre-trained encoder with the MIM head removed. Official BEiT
pre-trains with one relative position bias shared by all layers and fine-tunes with one
table per layer, each initialised from the shared table; when the fine-tuning resolution
differs, the relative position tables and the absolute position embedding are interpolated
to the new patch grid (:mod:`beitlab.checkpoint.backbone_adapt`). Segmentation and detection
adapters reuse :func:`load_pretrained_backbone`. Loading is strict after these adaptations
and the :func:`transfer_rules`: anything else that differs is an error with one table
(:mod:`beitlab.utils.strict_load`) unless the caller allows it.
"""
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from mmengine.logging import print_log
from torch import Tensor, nn

from beitlab.utils.strict_load import Allowance, AllowHint, load_state_dict_strict

from .backbone_adapt import SHARED_TABLE
from .io import load_checkpoint_file
from .layouts import detect_layout, layout_to_beitlab
from .meta import check_backbone_meta
from .unwrap import checkpoint_meta, has_prefix, unwrap_state_dict

__all__ = ['load_pretrained_backbone', 'extract_backbone_state', 'transfer_rules',
           'BACKBONE_PREFIX', 'MIM_HEAD_PREFIXES']

BACKBONE_PREFIX = 'backbone.'
MIM_HEAD_PREFIXES = ('head.', 'lm_head.')
_BLOCK_TABLE = re.compile(r'^blocks\.(\d+)\.attn\.relative_position_bias_table$')


def extract_backbone_state(state: Mapping[str, Tensor], prefix: str = BACKBONE_PREFIX
                           ) -> Tuple[Dict[str, Tensor], list]:
    """Backbone entries with official names, and the names dropped.

    If any key starts with ``prefix`` (a beitlab checkpoint) only those keys are kept, with
    the prefix stripped; everything else (MIM head, target generator, ...) is dropped.
    A state dict in another registered layout than the official one
    (:mod:`beitlab.checkpoint.layouts`) is converted to beitlab's first. Otherwise (an
    official checkpoint) every key is kept except the MIM/classification head (``head.*``,
    ``lm_head.*``); what does not belong to a backbone is left for the strict loader to
    report. ``relative_position_index`` buffers are always dropped (rebuilt by the backbone).
    """
    layout = detect_layout(state, default=None)
    if layout is not None and layout.name != 'official':
        beitlab, _, _ = layout_to_beitlab(layout, state)
        return extract_backbone_state(beitlab, BACKBONE_PREFIX)
    if prefix and has_prefix(state, prefix):
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
                             path_or_state: Union[str, 'os.PathLike[str]', Mapping[str, Any]],
                             prefix: str = BACKBONE_PREFIX,
                             logger: str = 'current',
                             allow_missing: Optional[Sequence[str]] = None,
                             allow_unexpected: Optional[Sequence[str]] = None,
                             allow_shape_mismatch: Optional[Sequence[str]] = None,
                             allow_hint: Optional[AllowHint] = None) -> Dict[str, list]:
    """Load a beitlab MIM checkpoint or an official BEiT checkpoint into ``backbone``, strictly.

    Steps: read the file (``.pth`` with ``weights_only=True``, or ``.safetensors``), unwrap
    it (:func:`~beitlab.checkpoint.unwrap.unwrap_state_dict`), check a recorded
    ``meta['backbone']`` against ``backbone`` (:func:`~beitlab.checkpoint.meta.check_backbone_meta`),
    keep the backbone keys and drop the MIM head (see :func:`extract_backbone_state`), apply
    :func:`transfer_rules`, then load with
    :func:`beitlab.utils.strict_load.load_state_dict_strict`. The layout adaptation happens
    in ``BEiTViT._load_from_state_dict`` (:mod:`beitlab.checkpoint.backbone_adapt`, so
    ``load_from`` and ``init_cfg=Pretrained`` get it too): the shared relative position bias
    is copied into every ``blocks.i.attn.relative_position_bias_table`` when the target has
    per-layer tables only, and position embeddings / bias tables of another square grid are
    interpolated. What still differs after these rules and adaptations is an error, unless
    allowed.

    Args:
        backbone: a :class:`~beitlab.models.backbones.beit_vit.BEiTViT` (or any module with
            the official BEiT parameter names).
        path_or_state: checkpoint file or its loaded content (a state dict, or a dict
            holding one).
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
        BackboneMetaMismatchError: the file's ``meta['backbone']`` names another width,
            depth, head count, MLP width, patch size or input channels than ``backbone``.
        StrictLoadError: a tensor whose shape differs from the target's after the
            adaptation (e.g. another ``embed_dims`` or ``patch_size``), or a missing or
            unexpected key, not covered by the rules or the allowances.
    """
    if isinstance(path_or_state, (str, os.PathLike)):
        source = os.fspath(path_or_state)
        checkpoint = load_checkpoint_file(source)
    else:
        source, checkpoint = '<state dict>', path_or_state
    if prefix == BACKBONE_PREFIX:
        check_backbone_meta(checkpoint_meta(checkpoint), backbone, repr(source))
    state, dropped = extract_backbone_state(unwrap_state_dict(checkpoint, repr(source)), prefix)
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
