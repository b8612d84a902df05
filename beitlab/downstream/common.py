"""Pieces both downstream adapters (mmseg, mmdet) share: the pre-trained-weight
initializer and the explicit, non-shadowing registration into another library's registries.
Importing this module registers nothing."""
from typing import Iterable, Optional, Tuple

from mmengine.registry import Registry
from torch import nn

from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.utils import register_all_modules

__all__ = ['BEiTPretrained', 'register_entries']


class BEiTPretrained:
    """Backbone ``init_cfg`` that loads pre-trained BEiT weights for dense prediction.

    BEiT Sec. 3.2 / Appendix: the per-layer relative position bias of the fine-tuned model
    starts from the pre-trained (shared) table, interpolated to the segmentation patch grid.
    Usage: ``backbone=dict(type='BEiTViT', ..., init_cfg=dict(type='BEiTPretrained',
    checkpoint='checkpoints/beit_fashion-mnist.pth', prefix='backbone.'))``.

    Args:
        checkpoint: path of a ``torch.save``'d state dict (or ``{'state_dict': ...}``),
            always opened with ``weights_only=True``.
        prefix: key prefix of the backbone in that file (``'backbone.'`` for beitlab
            algorithms, ``''`` for an official BEiT file).
    """

    def __init__(self, checkpoint: str, prefix: str = 'backbone.') -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix

    def __call__(self, module: nn.Module) -> None:
        if not isinstance(module, BEiTViT):
            raise TypeError(f'BEiTPretrained initialises a BEiTViT backbone, got '
                            f'{type(module).__name__}; put the init_cfg under model.backbone')
        from beitlab.utils.pretrained import load_pretrained_backbone
        # logs missing / unexpected / dropped / copied / resized keys itself
        self.report = load_pretrained_backbone(module, self.checkpoint, self.prefix)

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
