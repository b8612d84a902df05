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
  / official BEiT checkpoint through :func:`beitlab.checkpoint.pretrained.load_pretrained_backbone`
  (shared relative position bias copied to every layer, bias tables and the absolute
  position embedding interpolated to the segmentation grid, missing / unexpected keys
  listed).
- ``DATASETS``: ``FashionMNISTScenesDataset`` (scenes of
  ``tools/dataset_converters/fashion_mnist_scenes_seg.py``; defined in
  :mod:`beitlab.datasets.fashion_mnist_scenes_seg`).

It also runs :func:`beitlab.utils.register_all_modules` (without touching the default
scope), so ``beitlab.``-scoped names resolve from an mmseg config, e.g. the layer-decay
constructor ``constructor='beitlab.LayerDecayOptimWrapperConstructor'``.
"""
from mmseg.registry import DATASETS as MMSEG_DATASETS
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.registry import WEIGHT_INITIALIZERS as MMSEG_WEIGHT_INITIALIZERS

from beitlab.datasets.fashion_mnist_scenes_seg import FashionMNISTScenesDataset
from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.models.necks.multiscale_neck import ViTMultiScaleNeck

from .common import BEiTPretrained, register_entries

__all__ = ['BEiTPretrained', 'register_into_mmseg']


def register_into_mmseg(force: bool = False) -> None:
    """Register beitlab's backbone, neck, initializer and dataset into mmseg's registries.

    Idempotent: a name already bound to the same class is left alone; ``force`` rebinds.
    """
    register_entries('mmseg', ((MMSEG_MODELS, BEiTViT), (MMSEG_MODELS, ViTMultiScaleNeck),
                               (MMSEG_WEIGHT_INITIALIZERS, BEiTPretrained),
                               (MMSEG_DATASETS, FashionMNISTScenesDataset)), force)


register_into_mmseg()
