"""Pieces both downstream adapters (mmseg, mmdet) share: the pre-trained-weight
initializer and the explicit, non-shadowing registration into another library's registries.
Importing this module registers nothing."""
from typing import Iterable, Optional, Sequence, Tuple

from mmengine.registry import Registry
from torch import nn

from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.utils import register_all_modules
from beitlab.utils.strict_load import Allowance, AllowHint

__all__ = ['BEiTPretrained', 'register_entries']


class BEiTPretrained:
    """Backbone ``init_cfg`` that loads pre-trained BEiT weights for dense prediction, strictly.

    BEiT Sec. 3.2 / Appendix: the per-layer relative position bias of the fine-tuned model
    starts from the pre-trained (shared) table, interpolated to the segmentation patch grid.
    Usage: ``backbone=dict(type='BEiTViT', ..., init_cfg=dict(type='BEiTPretrained',
    checkpoint='checkpoints/beit_fashion-mnist.pth', prefix='backbone.'))``.

    Loading goes through :func:`beitlab.checkpoint.pretrained.load_pretrained_backbone`: the
    pre-training head is dropped, the transfer rules and the layout adaptations are applied,
    and anything that still differs stops the run with one table, unless allowed here.

    Args:
        checkpoint: path of a ``torch.save``'d state dict (or ``{'state_dict': ...}``,
            ``{'model': ...}``), always opened with ``weights_only=True``, or of a
            ``.safetensors`` file.
        prefix: key prefix of the backbone in that file (``'backbone.'`` for beitlab
            algorithms, ``''`` for an official BEiT file).
        allow_missing, allow_unexpected, allow_shape_mismatch: backbone key patterns (glob,
            or ``'re:'`` + regex; names without ``prefix``) of differences that may pass,
            e.g. ``allow_missing=['pos_embed']`` for a checkpoint pre-trained without an
            absolute position embedding.
    """

    def __init__(self, checkpoint: str, prefix: str = 'backbone.',
                 allow_missing: Optional[Sequence[str]] = None,
                 allow_unexpected: Optional[Sequence[str]] = None,
                 allow_shape_mismatch: Optional[Sequence[str]] = None) -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.allowance = Allowance.from_lists(allow_missing, allow_unexpected,
                                              allow_shape_mismatch, where='BEiTPretrained allow')

    def __call__(self, module: nn.Module) -> None:
        if not isinstance(module, BEiTViT):
            raise TypeError(f'BEiTPretrained initialises a BEiTViT backbone, got '
                            f'{type(module).__name__}; put the init_cfg under model.backbone')
        from beitlab.checkpoint.pretrained import load_pretrained_backbone
        a = self.allowance
        # logs left-at-init / not-loaded / dropped / copied / resized keys itself
        self.report = load_pretrained_backbone(
            module, self.checkpoint, self.prefix, allow_missing=a.missing,
            allow_unexpected=a.unexpected, allow_shape_mismatch=a.shape_mismatch,
            allow_hint=AllowHint("backbone init_cfg=dict(type='BEiTPretrained', ..., {})",
                                 ('allow_missing', 'allow_unexpected', 'allow_shape_mismatch')))

    def __repr__(self) -> str:
        return f'BEiTPretrained(checkpoint={self.checkpoint!r}, prefix={self.prefix!r})'


def register_entries(library: str, entries: Iterable[Tuple[Registry, type]],
                     force: bool = False) -> None:
    """Register each ``(registry, cls)`` of ``library`` (e.g. ``'mmseg'``) under the class
    name, after filling beitlab's own registries (default scope untouched).

    Idempotent: a name already bound to the same class is left alone. A name bound to a
    different class (the library's own part of that name) raises instead of shadowing it,
    unless ``force``.
    """
    register_all_modules(init_default_scope=False)
    for registry, cls in entries:
        existing: Optional[type] = registry.module_dict.get(cls.__name__)
        if existing is cls and not force:
            continue
        if existing is not None and not force:
            raise KeyError(f'{library} {registry.name} registry already holds a different '
                           f'{cls.__name__!r} ({existing.__module__}); refusing to shadow it')
        registry.register_module(name=cls.__name__, module=cls, force=force)
