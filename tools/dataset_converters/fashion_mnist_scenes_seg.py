"""Compose semantic-segmentation scenes from real Fashion-MNIST items, in mmseg's layout.

Each scene is a black ``--size`` x ``--size`` canvas on which ``--min-items``..``--max-items``
real Fashion-MNIST items (train split for ``train``, the official t10k split for ``val``) are
pasted at a random size and position by :func:`beitlab.datasets.scenes.compose_scene` (shared
with the detection converter). An item's mask is its pixels above ``--threshold`` after
resizing; later items occlude earlier ones in the image and in the label. Labels:
0 = background, 1..10 = the Fashion-MNIST classes in label order (``classes.txt``). Output::

    OUT/img_dir/{train,val}/<index>.png     grayscale scenes (mmcv loads them as 3-channel)
    OUT/ann_dir/{train,val}/<index>.png     uint8 label maps, 0..10 (no ignore pixels)
    OUT/classes.txt                         11 lines: background, then the 10 class names

Usage::

    python tools/dataset_converters/fashion_mnist_scenes_seg.py --out data/fashion_mnist_scenes

A non-empty ``OUT`` is refused unless ``--force`` is given (then files of the same name are
replaced).
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional, Tuple

import numpy as np
from PIL import Image

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.datasets.scenes import (  # noqa: E402
    FASHION_MNIST_CLASSES,
    compose_scene,
    default_fashion_mnist_root,
    load_fashion_mnist,
)
from beitlab.utils.atomic_io import atomic_write_text, check_output_path  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402

SEG_CLASSES = ('background', ) + FASHION_MNIST_CLASSES


def convert_split(src: str, out: str, split: str, num: int, seed: int, size: int,
                  num_items: Tuple[int, int], item_size: Tuple[int, int],
                  threshold: int) -> np.ndarray:
    """Write ``num`` scenes of one split; returns the pixel count per class ``[11] int64``."""
    images, labels = load_fashion_mnist(src, split)
    img_dir, ann_dir = osp.join(out, 'img_dir', split), osp.join(out, 'ann_dir', split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts = np.zeros(len(SEG_CLASSES), np.int64)
    for i in range(num):
        scene = compose_scene(images, labels, rng, canvas_size=(size, size), num_items=num_items,
                              item_size=item_size, fg_threshold=threshold)
        seg = scene.semantic_map(background=0, offset=1)  # [size, size] uint8, 0..10
        Image.fromarray(scene.image, mode='L').save(osp.join(img_dir, f'{i:05d}.png'))
        Image.fromarray(seg, mode='L').save(osp.join(ann_dir, f'{i:05d}.png'))
        counts += np.bincount(seg.ravel(), minlength=len(SEG_CLASSES))
    return counts


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--src', default=default_fashion_mnist_root(),
                        help='folder holding the four Fashion-MNIST *-ubyte.gz files')
    parser.add_argument('--out', default='data/fashion_mnist_scenes', help='output root')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--size', type=int, default=48, help='canvas side in pixels')
    parser.add_argument('--min-items', type=int, default=2)
    parser.add_argument('--max-items', type=int, default=3)
    parser.add_argument('--min-item-size', type=int, default=18, help='item side in pixels')
    parser.add_argument('--max-item-size', type=int, default=34)
    parser.add_argument('--threshold', type=int, default=30,
                        help='an item pixel above this grey value belongs to its mask')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='write into a non-empty --out (files of the same name are replaced)')
    args = parser.parse_args(argv)
    if not 1 <= args.min_items <= args.max_items:
        raise ValueError(f'--min-items {args.min_items} / --max-items {args.max_items}: '
                         'expected 1 <= min <= max')
    if not 4 <= args.min_item_size <= args.max_item_size <= args.size:
        raise ValueError(f'--min-item-size {args.min_item_size} / --max-item-size '
                         f'{args.max_item_size}: expected 4 <= min <= max <= --size {args.size}')
    check_output_path(args.out, [args.src], force=args.force, folder=True)
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(osp.join(args.out, 'classes.txt'),
                      ''.join(f'{name}\n' for name in SEG_CLASSES))
    for offset, (split, num) in enumerate((('train', args.num_train), ('val', args.num_val))):
        counts = convert_split(args.src, args.out, split, num, args.seed + offset, args.size,
                               (args.min_items, args.max_items),
                               (args.min_item_size, args.max_item_size), args.threshold)
        share = ', '.join(f'{n}={c / counts.sum():.3f}' for n, c in zip(SEG_CLASSES, counts))
        print(f'{split}: {num} scenes of {args.size}x{args.size} under {args.out}; '
              f'pixel shares: {share}')


if __name__ == '__main__':
    run_cli(main)
