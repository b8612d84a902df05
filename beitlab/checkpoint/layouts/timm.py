"""The timm BEiT layout (``timm/models/beit.py``: ``Beit``, ``Block``, ``Attention``,
``RelativePositionBias``; the ``beit_*`` and ``beitv2_*`` models, published as fine-tuned
classifiers, often as ``.safetensors``).

timm's ``Beit`` came from the official fine-tuning model and keeps its names: ``cls_token``,
``pos_embed``, ``patch_embed.proj.*``, ``rel_pos_bias.relative_position_bias_table``,
``blocks.{i}.{norm1, attn.qkv, attn.q_bias, attn.v_bias, attn.relative_position_bias_table,
attn.proj, norm2, mlp.fc1, mlp.fc2, gamma_1, gamma_2}``, ``norm`` / ``fc_norm`` and ``head``.
So this layout is the official classifier layout (:mod:`~beitlab.checkpoint.layouts.official`)
with timm's differences:

- classifier only (``kind='classifier'``): ``Beit`` has no ``mask_token`` (its line is
  commented out) and no MIM head; ``num_classes=0`` leaves ``head`` out. A pre-training
  state has no timm counterpart; its encoder without ``mask_token`` and the MIM head is a
  ``Beit(num_classes=0, global_pool='', use_shared_rel_pos_bias=True)``.
- pooling: ``global_pool='avg'`` has ``fc_norm`` and no ``norm``, any other value ``norm`` and
  no ``fc_norm``, as official ``use_mean_pooling``.
- ``pos_embed`` exists only with ``use_abs_pos_emb``; every registered ``beit_*`` model has
  relative positions only, so its state has no ``pos_embed``.
- ``k_bias`` is a zero buffer that is not saved (``persistent=False``); the LayerNorms have
  ``eps=1e-6`` (``timm/layers/norm.py`` ``LayerNorm``), as BEiT.
- ``relative_position_index`` buffers: saved by timm before 0.9.6 (both the per-layer and the
  shared one), only the shared one from 0.9.6 to 1.0.22, none from 1.0.23 on. Import accepts
  them (checked against the official index, then dropped); export writes none, which is what
  current timm loads with ``strict=True`` (an older timm with a shared table would need the
  shared buffer).
- ``swiglu_mlp`` / ``scale_mlp`` variants (``mlp.fc1_g``, ``mlp.norm``, ...) are not BEiT's
  and are reported as unknown keys.
"""
from collections import OrderedDict
from typing import Mapping, Tuple

from torch import Tensor

from ..errors import CheckpointKeyError
from . import official
from .base import Arch, Layout, StateDict

__all__ = ['LAYOUT']

INDEX_SUFFIX = 'relative_position_index'
_NO_PRETRAIN = ("timm's Beit (timm/models/beit.py) has no pre-training model: no mask_token and "
                'no MIM head')


def detect(state: Mapping[str, Tensor]) -> bool:
    """Official backbone names without the pre-training parts (``mask_token``, ``lm_head``).
    The official layout accepts these states too and reads them the same way."""
    return 'patch_embed.proj.weight' in state and 'blocks.0.attn.qkv.weight' in state and \
        'mask_token' not in state and not any(k.startswith('lm_head.') for k in state)


def to_beitlab(state: Mapping[str, Tensor], kind: str) -> Tuple[StateDict, Arch]:
    """timm ``Beit`` state dict -> (beitlab classifier state dict, arch), strictly."""
    if kind == 'pretrain':
        raise CheckpointKeyError(f'{_NO_PRETRAIN}; read it with kind="classifier"',
                                 missing=['mask_token', 'lm_head.weight', 'lm_head.bias'])
    return official.LAYOUT.to_beitlab(state, kind)


def from_beitlab(state: Mapping[str, Tensor], kind: str, arch: Arch) -> StateDict:
    """beitlab classifier state dict -> timm ``Beit`` state dict without index buffers (a
    leftover ``backbone.mask_token`` is dropped, as for the official classifier)."""
    if kind == 'pretrain':
        placeless = [k for k in state if k == 'backbone.mask_token' or k.startswith('head.')]
        raise CheckpointKeyError(
            f'{_NO_PRETRAIN}, so {placeless} have no place; export the encoder with '
            "kind='classifier' after removing them (timm: Beit(num_classes=0, global_pool=''))",
            unknown=placeless)
    exported = official.LAYOUT.from_beitlab(state, kind, arch)
    return OrderedDict((k, v) for k, v in exported.items() if not k.endswith(INDEX_SUFFIX))


LAYOUT = Layout(name='timm', description='timm: Beit (beit_*, beitv2_* classifiers)',
                detect=detect, to_beitlab=to_beitlab, from_beitlab=from_beitlab)
