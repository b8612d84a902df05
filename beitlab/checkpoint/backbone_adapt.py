"""State-dict surgery when BEiT weights meet a backbone of another layout or grid, as
official fine-tuning does (``beit/run_class_finetuning.py``,
``beit/semantic_segmentation/mmcv_custom/checkpoint.py``; BEiT Sec. 2.6 and App. "relative
position bias"):

- the relative position bias shared by all layers in pre-training is copied into every
  layer's table when the target has per-layer tables only;
- an absolute position embedding of another square grid is interpolated bicubically
  (:func:`~beitlab.ops.relative_position.resize_pos_embed`, the CLS position unchanged);
- a relative position bias table of another square grid gets the official geometric resize
  (:func:`~beitlab.ops.relative_position.resize_rel_pos_bias_table`, the three CLS entries
  unchanged).

:func:`adapt_backbone_state` is a pure function of the state dict and a
:class:`BackboneSpec` (plain data: the grid and which tables exist, with their shapes);
``BEiTViT._load_from_state_dict`` calls it, so every loader (``load_state_dict``,
``load_from``, ``init_cfg``, :func:`~beitlab.checkpoint.pretrained.load_pretrained_backbone`)
gets it, and the strict loaders compare keys and shapes after it.
"""
import math
from dataclasses import dataclass
from typing import Any, List, MutableMapping, Optional, Tuple

from mmengine.logging import print_log
from torch import Tensor

from beitlab.ops.relative_position import resize_pos_embed, resize_rel_pos_bias_table

__all__ = ['BackboneSpec', 'adapt_backbone_state', 'SHARED_TABLE', 'LAYER_TABLE']

SHARED_TABLE = 'rel_pos_bias.relative_position_bias_table'
LAYER_TABLE = 'blocks.{}.attn.relative_position_bias_table'

Shape = Tuple[int, ...]


@dataclass(frozen=True)
class BackboneSpec:
    """What a BEiT backbone expects of a state dict, as plain data.

    Attributes:
        grid: ``(H/P, W/P)`` patch grid.
        num_extra_tokens: positions before the patches in ``pos_embed`` (1 with CLS).
        pos_embed: shape of ``pos_embed`` (``[1, extra + N, D]``), None without one.
        shared_table: shape of the shared ``rel_pos_bias`` table, None without one.
        layer_tables: per layer, the shape of its own table (None where it has none).
    """

    grid: Tuple[int, int]
    num_extra_tokens: int
    pos_embed: Optional[Shape]
    shared_table: Optional[Shape]
    layer_tables: Tuple[Optional[Shape], ...]

    @classmethod
    def of(cls, backbone: Any) -> 'BackboneSpec':
        """What a built backbone expects, read from the official BEiT attribute names
        (``grid``, ``num_extra_tokens``, ``pos_embed``, ``rel_pos_bias``, ``blocks[i].attn``)."""
        def shape(tensor: Optional[Tensor]) -> Optional[Shape]:
            return None if tensor is None else tuple(tensor.shape)

        shared = getattr(backbone, 'rel_pos_bias', None)
        return cls(grid=tuple(backbone.grid), num_extra_tokens=int(backbone.num_extra_tokens),
                   pos_embed=shape(getattr(backbone, 'pos_embed', None)),
                   shared_table=shape(getattr(shared, 'relative_position_bias_table', None)),
                   layer_tables=tuple(
                       shape(getattr(block.attn, 'relative_position_bias_table', None))
                       for block in backbone.blocks))


def _odd_square_table_grid(rows: int) -> Optional[Tuple[int, int]]:
    """The square grid ``(s, s)`` of a table with ``(2s-1)^2 + 3`` rows, else None."""
    side = math.isqrt(rows - 3) if rows >= 3 else 0
    return ((side + 1) // 2, ) * 2 if side * side == rows - 3 and side % 2 == 1 else None


def adapt_backbone_state(state: MutableMapping[str, Tensor], prefix: str, spec: BackboneSpec,
                         logger: Optional[str] = 'current') -> List[str]:
    """Adapt the entries under ``prefix`` of ``state`` to ``spec``, in place.

    Only what can be adapted is changed (a table of a non-square grid, or a tensor of
    another width, is left for the strict loader to report).

    Args:
        state: the state dict being loaded (``nn.Module._load_from_state_dict`` passes the
            whole one, with ``prefix`` naming this backbone's entries).
        prefix: e.g. ``'backbone.'`` or ``''``.
        spec: the target backbone.
        logger: mmengine logger for one line per change (None: no logging).
    Returns:
        the changes made, one sentence each.
    """
    changes: List[str] = []
    shared_key = prefix + SHARED_TABLE
    layer_keys = [prefix + LAYER_TABLE.format(i) for i in range(len(spec.layer_tables))]
    if shared_key in state and spec.shared_table is None and spec.layer_tables and \
            spec.layer_tables[0] is not None and not any(k in state for k in layer_keys):
        table = state.pop(shared_key)
        for k in layer_keys:
            state[k] = table.clone()
        changes.append(f"copied the shared {shared_key} into each layer's table")
    pos_key = prefix + 'pos_embed'
    if spec.pos_embed is not None and pos_key in state and \
            tuple(state[pos_key].shape) != spec.pos_embed:
        n = state[pos_key].shape[1] - spec.num_extra_tokens
        side = math.isqrt(n) if n > 0 else 0
        if side > 0 and side * side == n:
            state[pos_key] = resize_pos_embed(state[pos_key], side, spec.grid,
                                              spec.num_extra_tokens)
            changes.append(f'resized {pos_key} from grid {(side, side)} to {spec.grid}')
    own_shapes = [spec.shared_table, *spec.layer_tables]
    for k, own in zip([shared_key, *layer_keys], own_shapes):
        if k not in state or own is None or tuple(state[k].shape) == own:
            continue
        src = _odd_square_table_grid(state[k].shape[0]) if state[k].dim() == 2 else None
        if src is not None:
            state[k] = resize_rel_pos_bias_table(state[k], src, spec.grid)
            changes.append(f'resized {k} from grid {src} to {spec.grid}')
    if logger is not None:
        for change in changes:
            print_log(change, logger)
    return changes
