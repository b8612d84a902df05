"""Semantic segmentation on scenes of real Fashion-MNIST items (an mmseg dataset).

The scenes come from ``tools/dataset_converters/fashion_mnist_scenes_seg.py``
(:mod:`beitlab.datasets.scenes`). The class builds on mmseg's ``BaseSegDataset``, so it
lives in mmseg's ``DATASETS`` registry, not beitlab's: :mod:`beitlab.downstream.mmseg_adapter`
registers it there when a segmentation config imports the adapter, and
:func:`beitlab.utils.register_all_modules` leaves this module alone (mmseg is an optional
dependency).
"""
from mmseg.datasets import BaseSegDataset

from .seg_checks import SegLabelCheckMixin

__all__ = ['FASHION_MNIST_SCENES_CLASSES', 'FASHION_MNIST_SCENES_PALETTE', 'FashionMNISTScenesDataset']

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
    (:class:`beitlab.datasets.seg_checks.SegLabelCheckMixin`).
    """

    METAINFO = dict(classes=FASHION_MNIST_SCENES_CLASSES, palette=FASHION_MNIST_SCENES_PALETTE)
    data_hint = 'python tools/dataset_converters/fashion_mnist_scenes_seg.py --out {root}'

    def __init__(self, img_suffix: str = '.png', seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False, **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)
