"""Tiny synthetic Fashion-MNIST idx files (the real format, made-up pixels) for tool tests."""
import gzip
import struct
from pathlib import Path
from typing import Tuple

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack('>HBB', 0, 0x08, array.ndim) + struct.pack(
        f'>{array.ndim}I', *array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_fashion_mnist_src(folder: Path, num_train: int = 12, num_val: int = 8,
                           seed: int = 0) -> Tuple[dict, dict]:
    """Write the four ``*-ubyte.gz`` files; return ({split: images}, {split: labels})."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = {}, {}
    for split, prefix, num in (('train', 'train', num_train), ('val', 't10k', num_val)):
        images[split] = rng.integers(0, 256, (num, 28, 28), dtype=np.uint8)
        labels[split] = np.arange(num, dtype=np.uint8) % 10
        write_idx(folder / f'{prefix}-images-idx3-ubyte.gz', images[split])
        write_idx(folder / f'{prefix}-labels-idx1-ubyte.gz', labels[split])
    return images, labels
