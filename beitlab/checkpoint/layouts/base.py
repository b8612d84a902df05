"""What a checkpoint layout is: a pair of pure functions between a foreign state dict and
beitlab's, plus the backbone architecture the weights imply.

The beitlab side of every layout is the state dict of a beitlab model:

- ``kind='pretrain'`` (the ``BEiT`` algorithm): ``backbone.<name>`` with the official BEiT
  backbone names (``cls_token``, ``mask_token``, ``pos_embed``, ``patch_embed.proj.*``,
  ``rel_pos_bias.relative_position_bias_table``, ``blocks.{i}.*``, ``norm.*``) and the MIM
  head ``head.fc.{weight,bias}`` (``weight: [V, D]``);
- ``kind='classifier'`` (``ImageClassifier``): the same backbone names without
  ``mask_token`` and usually with per-layer tables ``blocks.{i}.attn.relative_position_bias_table``
  (and ``fc_norm.*`` for mean pooling), and ``head.fc.{weight,bias}`` (``[num_classes, D]``).

beitlab never stores ``relative_position_index`` buffers (they are rebuilt from the grid);
a layout that saves them writes them on export and checks them on import.
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping

from torch import Tensor

__all__ = ['KINDS', 'Layout', 'StateDict', 'Arch']

KINDS = ('pretrain', 'classifier')

StateDict = Dict[str, Tensor]
# ``BEiTViT`` keyword arguments in plain Python types (what
# ``beitlab.checkpoint.layouts.official.infer_backbone_config`` returns), written into
# ``meta['backbone']`` of converted files so that a config that does not match is caught
# at load.
Arch = Dict[str, Any]


@dataclass(frozen=True)
class Layout:
    """One foreign checkpoint layout.

    Attributes:
        name: the ``--from`` / ``--to`` name of ``tools/model_converters/convert.py``.
        description: one line naming the library and the model classes.
        detect: ``state -> bool``, True when an unwrapped state dict is in this layout.
        to_beitlab: ``(state, kind) -> (beitlab state dict, arch)``; raises
            ``CheckpointKeyError`` naming every key it cannot place.
        from_beitlab: ``(beitlab state dict, kind, arch) -> state`` in this layout, complete
            enough to load with ``strict=True`` into the library's model class.
    """
    name: str
    description: str
    detect: Callable[[Mapping[str, Tensor]], bool]
    to_beitlab: Callable[[Mapping[str, Tensor], str], 'tuple[StateDict, Arch]']
    from_beitlab: Callable[[Mapping[str, Tensor], str, Arch], StateDict]
