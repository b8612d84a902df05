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

A non-empty ``OUT`` is refused unless ``--force`` is given (then files of the same name are
replaced); the ``meta/`` lists are written last and atomically, so a list never names an image
that was not written completely.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional

from PIL import Image
from tqdm import tqdm

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.datasets.fashion_mnist_files import (  # noqa: E402
    FASHION_MNIST_CLASSES,
    default_fashion_mnist_root,
    load_fashion_mnist,
)
from beitlab.utils.atomic_io import atomic_write_text, check_output_path  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402

CLASSES = FASHION_MNIST_CLASSES
SPLITS = ('train', 'val')


def convert_split(src: str, out: str, split: str, limit: Optional[int] = None) -> int:
    images, labels = load_fashion_mnist(src, split)  # [N, 28, 28] uint8, [N] int64
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
    atomic_write_text(osp.join(out, 'meta', f'{split}.txt'), ''.join(lines))
    return num


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--src', default=default_fashion_mnist_root(),
                        help='folder holding the four Fashion-MNIST *-ubyte.gz files')
    parser.add_argument('--out', default='data/fashion_mnist', help='output root')
    parser.add_argument('--limit', type=int, default=None,
                        help='convert only the first N images of each split (for quick tests)')
    parser.add_argument('--force', action='store_true',
                        help='write into a non-empty --out (files of the same name are replaced)')
    args = parser.parse_args(argv)
    check_output_path(args.out, [args.src], force=args.force, folder=True)
    os.makedirs(osp.join(args.out, 'meta'), exist_ok=True)
    atomic_write_text(osp.join(args.out, 'meta', 'classes.txt'),
                      ''.join(f'{name}\n' for name in CLASSES))
    counts = {split: convert_split(args.src, args.out, split, args.limit) for split in SPLITS}
    print(f'wrote {counts} images under {args.out}')


if __name__ == '__main__':
    run_cli(main)
