"""The architecture a converted checkpoint records, checked against the model it is loaded into.

``tools/model_converters/convert.py`` writes ``meta['backbone']``
(:func:`~beitlab.checkpoint.layouts.official.infer_backbone_config`: ``arch`` with
``embed_dims``, ``num_layers``, ``num_heads``, ``feedforward_channels``, and ``patch_size``,
``in_channels``, the grid and the position options). A backbone loaded from such a file
must have the same width, depth, heads, MLP width, patch size and input channels; the grid
and the position options may differ (they are adapted at load, or ruled by the transfer
rules).
"""
from typing import Any, Dict, Mapping, Optional, Tuple

from .errors import BackboneMetaMismatchError

__all__ = ['CHECKED_SETTINGS', 'recorded_backbone', 'check_backbone_meta']

# target attribute -> where meta['backbone'] keeps it
CHECKED_SETTINGS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ('embed_dims', ('arch', 'embed_dims')),
    ('num_layers', ('arch', 'num_layers')),
    ('num_heads', ('arch', 'num_heads')),
    ('feedforward_channels', ('arch', 'feedforward_channels')),
    ('patch_size', ('patch_size', )),
    ('in_channels', ('in_channels', )),
)


def recorded_backbone(meta: Optional[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """``meta['backbone']`` when it is a dict, else None."""
    backbone = meta.get('backbone') if isinstance(meta, Mapping) else None
    return backbone if isinstance(backbone, Mapping) else None


def _lookup(record: Mapping[str, Any], path: Tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(record, Mapping):
            return None
        record = record.get(key)
    return record


def check_backbone_meta(meta: Optional[Mapping[str, Any]], backbone: Any,
                        source: str = 'checkpoint') -> None:
    """Raise unless ``meta['backbone']`` (when there is one) fits ``backbone``.

    Only settings both sides know are compared (a target without ``num_heads``, or a record
    whose ``num_heads`` is None, skips that one).

    Raises:
        BackboneMetaMismatchError: one message naming every setting that differs, with the
            checkpoint's value and the target's.
    """
    record = recorded_backbone(meta)
    if record is None:
        return
    differences: Dict[str, Tuple[Any, Any]] = {}
    for attr, path in CHECKED_SETTINGS:
        have, want = _lookup(record, path), getattr(backbone, attr, None)
        if have is None or want is None or isinstance(want, bool):
            continue
        if int(have) != int(want):
            differences[attr] = (have, want)
    if differences:
        ckpt = ', '.join(f'{k}={v[0]}' for k, v in differences.items())
        target = ', '.join(f'{k}={v[1]}' for k, v in differences.items())
        raise BackboneMetaMismatchError(
            f"{source} holds a backbone with {ckpt} (its meta['backbone']) but the target "
            f'{type(backbone).__name__} has {target}; build the backbone with the '
            "checkpoint's settings (meta['backbone'] lists them)", differences)
