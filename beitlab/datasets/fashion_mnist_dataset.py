"""Fashion-MNIST read once from its four idx files and held in memory as uint8 arrays.

Each item holds its image as ``LoadImageChecked`` would give it from a PNG of
``tools/dataset_converters/fashion_mnist.py`` (colour: the grey level in all three BGR
channels, ``[28, 28, 3]`` uint8), and ``LoadImageChecked`` passes such items through, so the
same pipeline sees the same values, and makes the same random draws, as on the ImageNet-style
folder. At
32 px, reading and decoding a PNG per image costs about a third of the data pipeline's time
(``docs/performance.md``, "Fast path"); here an item is a copy of 784 bytes.
"""
import os.path as osp
from typing import List, Optional

import numpy as np
from mmengine.dataset import BaseDataset

from beitlab.registry import DATASETS

from .fashion_mnist_files import FASHION_MNIST_CLASSES, default_fashion_mnist_root, load_fashion_mnist

__all__ = ['FashionMNISTDataset']


@DATASETS.register_module()
class FashionMNISTDataset(BaseDataset):
    """One split of Fashion-MNIST from the idx files, in memory.

    Args:
        data_root: the folder with ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``;
            None or ``''`` takes :func:`~beitlab.datasets.fashion_mnist_files.default_fashion_mnist_root`
            (``$BEITLAB_FASHION_MNIST_ROOT``, else the Debian package's folder).
        split: ``'train'`` (60,000 images) or ``'val'`` / ``'test'`` (the official 10,000).
        num_samples: keep the first ``num_samples`` images (None: all).
        **kwargs: mmengine ``BaseDataset`` arguments (``pipeline``, ``test_mode``, ...).

    ``get_data_info(i)`` is ``dict(img=[28, 28, 3] uint8 BGR, img_shape, ori_shape,
    gt_label: int, sample_idx=i)`` (no ``img_path``: ``LoadImageChecked`` passes it through).
    The images are chosen by ``split`` and ``num_samples``; ``ann_file`` and ``data_prefix``
    (of image folders) are refused.
    """

    METAINFO = dict(classes=FASHION_MNIST_CLASSES)

    def __init__(self, data_root: Optional[str] = None, split: str = 'train',
                 num_samples: Optional[int] = None, **kwargs) -> None:
        if num_samples is not None and num_samples <= 0:
            raise ValueError(f'FashionMNISTDataset: num_samples={num_samples} must be a positive '
                             'number of images (or None for all)')
        for key in ('ann_file', 'data_prefix'):
            value = kwargs.get(key)
            if value and (not isinstance(value, dict) or any(value.values())):
                raise ValueError(f'FashionMNISTDataset reads a split of the idx files; {key}={value!r} '
                                 "does not apply: choose the images with split='train' or 'test' "
                                 '(the official test images, the val folder of the converter) '
                                 'and num_samples')
        self.split = split
        self.num_samples = num_samples
        self._images: Optional[np.ndarray] = None
        root = data_root or default_fashion_mnist_root()
        super().__init__(data_root=osp.expanduser(root), **kwargs)

    def load_data_list(self) -> List[dict]:
        images, labels = load_fashion_mnist(self.data_root, self.split)  # [N, 28, 28] uint8
        if self.num_samples is not None:
            images, labels = images[:self.num_samples], labels[:self.num_samples]
        self._images = np.ascontiguousarray(images)
        return [dict(image_index=i, gt_label=int(label)) for i, label in enumerate(labels)]

    def get_data_info(self, idx: int) -> dict:
        """The item's annotation plus its image ``img`` (a new ``[28, 28, 3]`` array each call:
        transforms may change it in place)."""
        info = super().get_data_info(idx)
        gray = self._images[info.pop('image_index')]
        info['img'] = np.repeat(gray[..., None], 3, axis=2)
        info['img_shape'] = info['ori_shape'] = gray.shape
        return info
