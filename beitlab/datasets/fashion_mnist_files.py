"""Reading the four standard Fashion-MNIST idx files (train/t10k images and labels).

Used by the ImageNet-style converter (``tools/dataset_converters/fashion_mnist.py``) and
by the scene composer (:mod:`beitlab.datasets.scenes`). Nothing here registers.

Where the files are looked for: the folder named by the environment variable
``BEITLAB_FASHION_MNIST_ROOT`` when it is set, otherwise the Debian package's folder
(``apt-get install dataset-fashion-mnist`` puts them in ``/usr/share/datasets/fashion-mnist``).
A 500 + 250 image subset in the same format ships in ``tests/data/fashion_mnist``.
"""
import gzip
import os
import os.path as osp
import struct
from typing import Optional, Tuple

import numpy as np

__all__ = ['DEFAULT_FASHION_MNIST_ROOT', 'FASHION_MNIST_ROOT_ENV', 'FASHION_MNIST_CLASSES',
           'default_fashion_mnist_root', 'read_idx', 'load_fashion_mnist']

DEFAULT_FASHION_MNIST_ROOT = '/usr/share/datasets/fashion-mnist'
FASHION_MNIST_ROOT_ENV = 'BEITLAB_FASHION_MNIST_ROOT'
FASHION_MNIST_CLASSES = ('t-shirt_top', 'trouser', 'pullover', 'dress', 'coat', 'sandal',
                         'shirt', 'sneaker', 'bag', 'ankle_boot')
_SPLIT_PREFIX = {'train': 'train', 'val': 't10k', 'test': 't10k'}


def default_fashion_mnist_root() -> str:
    """``$BEITLAB_FASHION_MNIST_ROOT`` if set, else the Debian package's folder."""
    return os.environ.get(FASHION_MNIST_ROOT_ENV) or DEFAULT_FASHION_MNIST_ROOT


def read_idx(path: str) -> np.ndarray:
    """Read one (optionally gzipped) idx file of uint8 values: big-endian header, raw data."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Fashion-MNIST file {path!r} not found; expected the four '
            f'{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte.gz files there '
            f'(apt-get install dataset-fashion-mnist puts them in {DEFAULT_FASHION_MNIST_ROOT}; '
            f'or set {FASHION_MNIST_ROOT_ENV} or --src to a folder holding them)')
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack('>HBB', data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f'{path!r} is not an idx file of uint8 values '
                         f'(magic bytes {data[:4].hex()}, expected 0000 08 0N)')
    shape = struct.unpack(f'>{ndim}I', data[4:4 + 4 * ndim])
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise ValueError(f'{path!r}: header says shape {shape} but holds {values.size} values')
    return values.reshape(shape)


def load_fashion_mnist(root: Optional[str] = None,
                       split: str = 'train') -> Tuple[np.ndarray, np.ndarray]:
    """Return ``images: [N, 28, 28] uint8`` and ``labels: [N] int64`` of one official split.

    ``root`` defaults to :func:`default_fashion_mnist_root`; ``split`` is 'train' (60k) or
    'val'/'test' (the official 10k t10k split).
    """
    root = root or default_fashion_mnist_root()
    if split not in _SPLIT_PREFIX:
        raise ValueError(f'split {split!r} not in {sorted(_SPLIT_PREFIX)}')
    prefix = _SPLIT_PREFIX[split]

    def find(kind: str) -> str:
        gz = osp.join(root, f'{prefix}-{kind}-ubyte.gz')
        return gz[:-3] if not osp.isfile(gz) and osp.isfile(gz[:-3]) else gz

    images = read_idx(find('images-idx3'))
    labels = read_idx(find('labels-idx1')).astype(np.int64)
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(f'{root} ({split}): images {images.shape} and labels {labels.shape} '
                         'do not match (expected [N, H, W] and [N])')
    return images, labels
