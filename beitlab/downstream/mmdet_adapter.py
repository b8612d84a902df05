"""beitlab inside mmdetection: explicit registration into mmdet's registries.

BEiT (Bao et al., 2021) transfers its pre-trained ViT to dense prediction (Sec. 3.2); for
COCO detection and instance segmentation the plain ViT feeds Mask R-CNN through a feature
pyramid, either from four intermediate blocks (BEiT/SETR-style multi-scale neck, then
mmdet's FPN) or from the last block alone (ViTDet's simple feature pyramid, Li et al. 2022).
mmdet configs run with ``default_scope = 'mmdet'``, so they see only mmdet's registries. A
detection config loads this one module::

    custom_imports = dict(imports=['beitlab.downstream.mmdet_adapter'],
                          allow_failed_imports=False)

and then names beitlab's parts like mmdet's own:

- ``MODELS``: ``BEiTViT`` (backbone; ``out_type='featmap'``), ``ViTMultiScaleNeck``
  (strides P/4..2P from four blocks, shared with segmentation) and ``SimpleFeaturePyramid``
  (strides from the last block, optional extra max-pooled level).
- ``WEIGHT_INITIALIZERS``: ``BEiTPretrained`` (shared with the mmseg adapter, in ``common.py``):
  a backbone ``init_cfg`` that loads a beitlab or official BEiT checkpoint with position
  embedding and relative position bias interpolated to the detection grid.

It also runs :func:`beitlab.utils.register_all_modules` (without touching the default scope)
so ``beitlab.``-scoped names resolve from an mmdet config, e.g.
``constructor='beitlab.LayerDecayOptimWrapperConstructor'``.

The backbone's absolute position embedding is built for ``img_size``, so detection
pipelines pad every image to that fixed size (``Pad(size=...)``, as ViTDet's 1024 x 1024
large-scale-jitter recipe does).
"""
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.registry import WEIGHT_INITIALIZERS as MMDET_WEIGHT_INITIALIZERS

from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.models.necks.multiscale_neck import ViTMultiScaleNeck
from beitlab.models.necks.simple_feature_pyramid import SimpleFeaturePyramid

from .common import BEiTPretrained, register_entries

__all__ = ['register_into_mmdet', 'MMDET_ENTRIES']

MMDET_ENTRIES = ((MMDET_MODELS, BEiTViT), (MMDET_MODELS, ViTMultiScaleNeck),
                 (MMDET_MODELS, SimpleFeaturePyramid),
                 (MMDET_WEIGHT_INITIALIZERS, BEiTPretrained))


def register_into_mmdet(force: bool = False) -> None:
    """Register beitlab's backbone, necks and pre-trained initializer into mmdet.

    Idempotent: a name already bound to the same class is left alone. A name bound to a
    different class (an mmdet part of the same name) raises instead of shadowing it, unless
    ``force``.
    """
    register_entries('mmdet', MMDET_ENTRIES, force)


register_into_mmdet()

# COCO dataset / metric that name an annotation file without annotations or images
# (coco_checks.py); beitlab.utils.prepare_config puts them in place of mmdet's own.
from mmdet.registry import DATASETS as MMDET_DATASETS  # noqa: E402
from mmdet.registry import METRICS as MMDET_METRICS  # noqa: E402

from .coco_checks import CheckedCocoDataset, CheckedCocoMetric  # noqa: E402

MMDET_CHECK_ENTRIES = ((MMDET_DATASETS, CheckedCocoDataset), (MMDET_METRICS, CheckedCocoMetric))
register_entries('mmdet', MMDET_CHECK_ENTRIES)
