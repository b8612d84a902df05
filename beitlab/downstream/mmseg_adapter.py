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
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS as MMSEG_DATASETS
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.registry import WEIGHT_INITIALIZERS as MMSEG_WEIGHT_INITIALIZERS

from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.models.necks.multiscale_neck import ViTMultiScaleNeck

from .common import BEiTPretrained, register_entries
from .seg_checks import SegLabelCheckMixin

__all__ = ['BEiTPretrained', 'FashionMNISTScenesDataset', 'register_into_mmseg']

FASHION_MNIST_SCENES_CLASSES = ('background', 't-shirt_top', 'trouser', 'pullover', 'dress',
                                'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle_boot')
FASHION_MNIST_SCENES_PALETTE = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25],
                                [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240],
                                [240, 50, 230], [210, 245, 60], [250, 190, 212]]


class FashionMNISTScenesDataset(SegLabelCheckMixin, BaseSegDataset):
    """Scenes of real Fashion-MNIST items (``fashion_mnist_scenes_seg.py``), mmseg layout.

    ``img_dir/{split}/*.png`` grayscale scenes and ``ann_dir/{split}/*.png`` label maps with
    0 = background and 1..10 the Fashion-MNIST classes; no zero-label reduction. A missing
    or empty image folder is an error when the dataset is built, and a label map with a
    value other than 0..10 and 255 (ignore) an error naming the file when it is loaded
    (:class:`beitlab.downstream.seg_checks.SegLabelCheckMixin`).
    """

    METAINFO = dict(classes=FASHION_MNIST_SCENES_CLASSES, palette=FASHION_MNIST_SCENES_PALETTE)
    data_hint = 'python tools/dataset_converters/fashion_mnist_scenes_seg.py --out {root}'

    def __init__(self, img_suffix: str = '.png', seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False, **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)


def register_into_mmseg(force: bool = False) -> None:
    """Register beitlab's backbone, neck, initializer and dataset into mmseg's registries.

    Idempotent: a name already bound to the same class is left alone; ``force`` rebinds.
    """
    register_entries('mmseg', ((MMSEG_MODELS, BEiTViT), (MMSEG_MODELS, ViTMultiScaleNeck),
                               (MMSEG_WEIGHT_INITIALIZERS, BEiTPretrained),
                               (MMSEG_DATASETS, FashionMNISTScenesDataset)), force)


register_into_mmseg()
