"""Load a pre-trained BEiT backbone for fine-tuning, and convert classifiers to and from the
official BEiT layout (Bao et al., 2021, Sec. 2.6 and 3.1; official
``beit/run_class_finetuning.py``).

Fine-tuning starts from the MIM-pre-trained encoder with the MIM head removed. Official BEiT
pre-trains with one relative position bias shared by all layers and fine-tunes with one
table per layer, each initialised from the shared table; when the fine-tuning resolution
differs, the relative position tables and the absolute position embedding are interpolated
to the new patch grid. Segmentation and detection adapters reuse
:func:`load_pretrained_backbone`.
"""
import re
from typing import Dict, Mapping, Tuple, Union

from mmengine.logging import print_log
from torch import Tensor, nn

from beitlab.utils.checkpoint import install_safe_checkpoint_loading, safe_torch_load

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


def load_pretrained_backbone(backbone: nn.Module,
                             path_or_state: Union[str, Mapping[str, Tensor]],
                             prefix: str = 'backbone.',
                             logger: str = 'current') -> Dict[str, list]:
    """Load a beitlab MIM checkpoint or an official BEiT checkpoint into ``backbone``.

    Steps: unwrap (``state_dict``/``model``), keep the backbone keys and drop the MIM head
    (see :func:`extract_backbone_state`), then ``load_state_dict(strict=False)``. The layout
    adaptation happens in ``BEiTViT._load_from_state_dict`` (so ``load_from`` and
    ``init_cfg=Pretrained`` get it too): the shared relative position bias is copied into
    every ``blocks.i.attn.relative_position_bias_table`` when the target has per-layer tables
    only, and position embeddings / bias tables of another square grid are interpolated.
    Missing and unexpected keys are logged and returned.

    Args:
        backbone: a :class:`~beitlab.models.backbones.beit_vit.BEiTViT` (or any module with
            the official BEiT parameter names).
        path_or_state: checkpoint file (loaded with ``weights_only=True``) or a state dict.
        prefix: prefix of the backbone keys in a beitlab checkpoint.
    Returns:
        dict with lists ``missing_keys``, ``unexpected_keys``, ``dropped_keys`` (MIM head and
        other non-backbone entries) and ``copied_keys`` (per-layer tables made from the
        shared one).
    Raises:
        RuntimeError: (from torch) a tensor whose shape differs from the target's after the
            adaptation, e.g. another ``embed_dims`` or ``patch_size``.
    """
    source = path_or_state if isinstance(path_or_state, str) else '<state dict>'
    if isinstance(path_or_state, str):
        install_safe_checkpoint_loading()  # checkpoints saved by mmengine carry its logging types
        checkpoint = safe_torch_load(path_or_state)
    else:
        checkpoint = path_or_state
    state, dropped = extract_backbone_state(_unwrap(checkpoint), prefix)
    target_keys = set(backbone.state_dict())
    copied = []
    if SHARED_TABLE in state and SHARED_TABLE not in target_keys:
        copied = sorted((k for k in target_keys if _BLOCK_TABLE.match(k) and k not in state),
                        key=lambda k: int(_BLOCK_TABLE.match(k).group(1)))
    result = backbone.load_state_dict(state, strict=False)
    report = dict(missing_keys=list(result.missing_keys),
                  unexpected_keys=list(result.unexpected_keys), dropped_keys=dropped,
                  copied_keys=copied)
    print_log(
        f'loaded pre-trained backbone from {source}: missing keys: '
        f'{report["missing_keys"] or "none"}; unexpected keys: '
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
