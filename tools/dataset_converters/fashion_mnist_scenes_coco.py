"""Compose Fashion-MNIST scenes and write them in mmdet's COCO layout (boxes + RLE masks).

Every scene pastes several real Fashion-MNIST items at random scale and position
(``beitlab.datasets.scenes.compose_scene``); train scenes draw items from the official train
split, val scenes from the t10k split, so no item is shared. Output::

    OUT/train/000000.png ...                  grayscale scenes
    OUT/val/000000.png ...
    OUT/annotations/instances_train.json      COCO: images, annotations (bbox xywh, area,
    OUT/annotations/instances_val.json        compressed-RLE segmentation, iscrowd=0), categories

Category ids are ``label + 1`` with the class names of ``FASHION_MNIST_CLASSES``. A non-empty
``OUT`` is refused unless ``--force`` is given; each annotation file is written atomically after
the images it lists.

Usage::

    python tools/dataset_converters/fashion_mnist_scenes_coco.py --out data/fmnist_scenes_coco_48px \\
        --num-train 1000 --num-val 100
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

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


def encode_mask(mask: np.ndarray) -> Dict:
    """[H, W] bool -> COCO compressed RLE with ``counts`` as str (JSON-safe)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def convert_split(out: str, split: str, num_images: int, src: str, seed: int,
                  canvas_size: Tuple[int, int], num_items: Tuple[int, int],
                  item_size: Tuple[int, int]) -> Dict:
    """Compose ``num_images`` scenes, save the PNGs and return the COCO dict."""
    images, labels = load_fashion_mnist(src, split)
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(out, split), exist_ok=True)
    coco_images: List[Dict] = []
    annotations: List[Dict] = []
    for img_id in range(num_images):
        scene = compose_scene(images, labels, rng, canvas_size=canvas_size,
                              num_items=num_items, item_size=item_size)
        file_name = f'{img_id:06d}.png'
        Image.fromarray(scene.image, mode='L').save(osp.join(out, split, file_name))
        coco_images.append(dict(id=img_id, file_name=file_name, height=canvas_size[0],
                                width=canvas_size[1]))
        for inst in scene.instances:
            annotations.append(dict(id=len(annotations) + 1, image_id=img_id,
                                    category_id=inst.label + 1, bbox=list(inst.bbox_xywh),
                                    area=float(inst.area), segmentation=encode_mask(inst.mask),
                                    iscrowd=0))
    categories = [dict(id=i + 1, name=name, supercategory='fashion')
                  for i, name in enumerate(FASHION_MNIST_CLASSES)]
    return dict(info=dict(description=f'Fashion-MNIST scenes ({split}), seed {seed}'),
                images=coco_images, annotations=annotations, categories=categories)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/fmnist_scenes_coco_48px')
    parser.add_argument('--src', default=default_fashion_mnist_root(),
                        help='folder with the raw Fashion-MNIST idx(.gz) files')
    parser.add_argument('--num-train', type=int, default=1000)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--canvas', type=int, nargs=2, default=(48, 48), metavar=('H', 'W'))
    parser.add_argument('--num-items', type=int, nargs=2, default=(1, 3), metavar=('MIN', 'MAX'))
    parser.add_argument('--item-size', type=int, nargs=2, default=(16, 28),
                        metavar=('MIN', 'MAX'), help='side of a pasted item in pixels')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='write into a non-empty --out (files of the same name are replaced)')
    args = parser.parse_args()
    check_output_path(args.out, [args.src], force=args.force, folder=True)
    os.makedirs(osp.join(args.out, 'annotations'), exist_ok=True)
    for offset, (split, num) in enumerate((('train', args.num_train), ('val', args.num_val))):
        coco = convert_split(args.out, split, num, args.src, args.seed + offset,
                             tuple(args.canvas), tuple(args.num_items), tuple(args.item_size))
        path = osp.join(args.out, 'annotations', f'instances_{split}.json')
        atomic_write_text(path, json.dumps(coco))
        print(f'{split}: {len(coco["images"])} images, {len(coco["annotations"])} instances '
              f'-> {path}')


if __name__ == '__main__':
    run_cli(main)
