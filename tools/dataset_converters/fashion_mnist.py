"""Convert the raw Fashion-MNIST idx files into beitlab's ImageNet-style layout.

Reads the four standard files (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``) from ``--src`` (by default the
Debian package ``dataset-fashion-mnist``: ``apt-get install dataset-fashion-mnist``) and writes::

    OUT/train/<class_name>/<index>.png      60,000 grayscale 28x28 PNGs
    OUT/val/<class_name>/<index>.png        10,000 (the official test split)
    OUT/meta/train.txt, OUT/meta/val.txt    one line per image: ``<class_name>/<index>.png <label>``
    OUT/meta/classes.txt                    one class name per line, in label order

Usage::

    python tools/dataset_converters/fashion_mnist.py --out data/fashion_mnist
"""
import argparse
import gzip
import os
import os.path as osp
import struct
from typing import Optional

import numpy as np
from PIL import Image
from tqdm import tqdm

DEFAULT_SRC = '/usr/share/datasets/fashion-mnist'
CLASSES = ('t-shirt_top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker',
           'bag', 'ankle_boot')
SPLITS = {'train': 'train', 'val': 't10k'}
IDX_DTYPE = {0x08: np.uint8}


def read_idx(path: str) -> np.ndarray:
    """Read one (optionally gzipped) idx file: a big-endian header then raw values."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Fashion-MNIST file {path!r} not found; expected the four *-ubyte.gz files in '
            f'--src (apt-get install dataset-fashion-mnist puts them in {DEFAULT_SRC})')
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack('>HBB', data[:4])
    if zero != 0 or dtype_code not in IDX_DTYPE:
        raise ValueError(f'{path!r} is not an idx file of uint8 values '
                         f'(magic bytes {data[:4].hex()}, expected 0000 08 0N)')
    shape = struct.unpack(f'>{ndim}I', data[4:4 + 4 * ndim])
    values = np.frombuffer(data, dtype=IDX_DTYPE[dtype_code], offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise ValueError(f'{path!r}: header says shape {shape} but holds {values.size} values')
    return values.reshape(shape)


def find_file(src: str, prefix: str, kind: str) -> str:
    """``<prefix>-<kind>-ubyte.gz`` or the uncompressed ``<prefix>-<kind>-ubyte``."""
    gz = osp.join(src, f'{prefix}-{kind}-ubyte.gz')
    raw = gz[:-3]
    return raw if not osp.isfile(gz) and osp.isfile(raw) else gz


def convert_split(src: str, out: str, split: str, limit: Optional[int] = None) -> int:
    prefix = SPLITS[split]
    images = read_idx(find_file(src, prefix, 'images-idx3'))  # [N, 28, 28] uint8
    labels = read_idx(find_file(src, prefix, 'labels-idx1'))  # [N] uint8
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f'{split}: images {images.shape} and labels {labels.shape} do not match '
                         '(expected [N, H, W] and [N])')
    if labels.max() >= len(CLASSES):
        raise ValueError(f'{split}: label {labels.max()} out of range for {len(CLASSES)} classes')
    num = len(images) if limit is None else min(limit, len(images))
    for name in CLASSES:
        os.makedirs(osp.join(out, split, name), exist_ok=True)
    lines = []
    for idx in tqdm(range(num), desc=f'fashion-mnist {split}', unit='img'):
        rel = f'{CLASSES[labels[idx]]}/{idx:05d}.png'
        Image.fromarray(images[idx], mode='L').save(osp.join(out, split, rel))
        lines.append(f'{rel} {int(labels[idx])}\n')
    with open(osp.join(out, 'meta', f'{split}.txt'), 'w') as f:
        f.writelines(lines)
    return num


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--src', default=DEFAULT_SRC,
                        help='folder holding the four Fashion-MNIST *-ubyte.gz files')
    parser.add_argument('--out', default='data/fashion_mnist', help='output root')
    parser.add_argument('--limit', type=int, default=None,
                        help='convert only the first N images of each split (for quick tests)')
    args = parser.parse_args(argv)
    os.makedirs(osp.join(args.out, 'meta'), exist_ok=True)
    with open(osp.join(args.out, 'meta', 'classes.txt'), 'w') as f:
        f.writelines(f'{name}\n' for name in CLASSES)
    counts = {split: convert_split(args.src, args.out, split, args.limit) for split in SPLITS}
    print(f'wrote {counts} images under {args.out}')


if __name__ == '__main__':
    main()
