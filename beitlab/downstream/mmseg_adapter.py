"""beitlab inside mmsegmentation: explicit registration into mmseg's registries.

BEiT Sec. 3.2 transfers the pre-trained ViT to ADE20K with UPerNet. mmseg configs run
with ``default_scope = 'mmseg'``, so they find only what mmseg's registries hold. A
segmentation config loads this one module::

    custom_imports = dict(imports=['beitlab.downstream.mmseg_adapter'],
                          allow_failed_imports=False)

and then names beitlab's parts like mmseg's own:

- ``MODELS``: ``BEiTViT`` (beitlab's backbone; mmseg's own, different ``BEiT`` is untouched)
  and ``ViTMultiScaleNeck``.
- ``WEIGHT_INITIALIZERS``: ``BEiTPretrained``, a backbone ``init_cfg`` that loads a beitlab
  / official BEiT checkpoint through :func:`beitlab.utils.pretrained.load_pretrained_backbone`
  (shared relative position bias copied to every layer, bias tables and the absolute
  position embedding interpolated to the segmentation grid, missing / unexpected keys
  listed).
- ``DATASETS``: ``FashionMNISTScenesDataset`` (scenes of
  ``tools/dataset_converters/fashion_mnist_scenes_seg.py``).

It also runs :func:`beitlab.utils.register_all_modules` (without touching the default
scope), so ``beitlab.``-scoped names resolve from an mmseg config, e.g. the layer-decay
constructor ``constructor='beitlab.LayerDecayOptimWrapperConstructor'``.
"""
from typing import Optional

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS as MMSEG_DATASETS
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.registry import WEIGHT_INITIALIZERS as MMSEG_WEIGHT_INITIALIZERS
from torch import nn

from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.models.necks.multiscale_neck import ViTMultiScaleNeck
from beitlab.utils import register_all_modules

__all__ = ['BEiTPretrained', 'FashionMNISTScenesDataset', 'register_into_mmseg']

FASHION_MNIST_SCENES_CLASSES = ('background', 't-shirt_top', 'trouser', 'pullover', 'dress',
                                'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle_boot')
FASHION_MNIST_SCENES_PALETTE = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25],
                                [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240],
                                [240, 50, 230], [210, 245, 60], [250, 190, 212]]


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


class FashionMNISTScenesDataset(BaseSegDataset):
    """Scenes of real Fashion-MNIST items (``fashion_mnist_scenes_seg.py``), mmseg layout.

    ``img_dir/{split}/*.png`` grayscale scenes and ``ann_dir/{split}/*.png`` label maps with
    0 = background and 1..10 the Fashion-MNIST classes; no zero-label reduction.
    """

    METAINFO = dict(classes=FASHION_MNIST_SCENES_CLASSES, palette=FASHION_MNIST_SCENES_PALETTE)

    def __init__(self, img_suffix: str = '.png', seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False, **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)


def register_into_mmseg(force: bool = False) -> None:
    """Register beitlab's backbone, neck, initializer and dataset into mmseg's registries.

    Idempotent: a name already bound to the same class is left alone; ``force`` rebinds.
    """
    register_all_modules(init_default_scope=False)
    for registry, cls in ((MMSEG_MODELS, BEiTViT), (MMSEG_MODELS, ViTMultiScaleNeck),
                          (MMSEG_WEIGHT_INITIALIZERS, BEiTPretrained),
                          (MMSEG_DATASETS, FashionMNISTScenesDataset)):
        existing: Optional[type] = registry.module_dict.get(cls.__name__)
        if existing is cls and not force:
            continue
        if existing is not None and not force:
            raise KeyError(f'mmseg {registry.name} registry already holds a different '
                           f'{cls.__name__!r} ({existing.__module__}); refusing to shadow it')
        registry.register_module(name=cls.__name__, module=cls, force=force)


register_into_mmseg()
