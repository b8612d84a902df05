"""Scenes composed from real Fashion-MNIST items, for the dense downstream tasks.

Detection/instance segmentation and semantic segmentation (transfer of the pre-trained
encoder to dense prediction, BEiT Sec. 3.2) need images with several objects, boxes and
per-pixel masks. No such real data ships offline, so each scene pastes several real
28 x 28 Fashion-MNIST items, rescaled and placed at random, on a black canvas. Later items
occlude earlier ones, and every instance keeps the mask of its *visible* pixels, so boxes,
instance masks and the class map agree pixel for pixel with the image.

Shared by ``tools/dataset_converters/fashion_mnist_scenes_coco.py`` (COCO JSON, RLE masks)
and any semantic-segmentation converter (``Scene.semantic_map``). Nothing here registers.
"""
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image

from .fashion_mnist_files import (
    DEFAULT_FASHION_MNIST_ROOT,
    FASHION_MNIST_CLASSES,
    default_fashion_mnist_root,
    load_fashion_mnist,
    read_idx,
)

__all__ = [
    'FASHION_MNIST_CLASSES', 'DEFAULT_FASHION_MNIST_ROOT', 'default_fashion_mnist_root', 'read_idx',
    'load_fashion_mnist',
    'SceneInstance', 'Scene', 'compose_scene'
]

@dataclass
class SceneInstance:
    """One pasted item: its class and the mask of its visible pixels."""
    label: int  # 0-based Fashion-MNIST class id
    mask: np.ndarray  # [H, W] bool, visible pixels only
    source_index: int  # index of the item in its Fashion-MNIST split

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def bbox_xywh(self) -> Tuple[float, float, float, float]:
        """Tight box around the visible mask, COCO convention ``[x, y, w, h]`` in pixels."""
        ys, xs = np.nonzero(self.mask)
        x0, y0 = int(xs.min()), int(ys.min())
        return float(x0), float(y0), float(xs.max() + 1 - x0), float(ys.max() + 1 - y0)


@dataclass
class Scene:
    """A composed grayscale image and its instances (in paste order)."""
    image: np.ndarray  # [H, W] uint8
    instances: List[SceneInstance] = field(default_factory=list)

    def semantic_map(self, background: int = 0, offset: int = 1) -> np.ndarray:
        """Class map ``[H, W] uint8``: ``background`` where no item, else ``label + offset``."""
        seg = np.full(self.image.shape, background, dtype=np.uint8)
        for inst in self.instances:
            seg[inst.mask] = inst.label + offset
        return seg


def _resize_item(item: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a [28, 28] uint8 item to [size, size]."""
    return np.asarray(Image.fromarray(item).resize((size, size), Image.BILINEAR))


def compose_scene(images: np.ndarray,
                  labels: np.ndarray,
                  rng: np.random.Generator,
                  canvas_size: Tuple[int, int] = (96, 96),
                  num_items: Tuple[int, int] = (2, 5),
                  item_size: Tuple[int, int] = (22, 44),
                  fg_threshold: int = 30,
                  min_visible: float = 0.7,
                  max_tries: int = 20,
                  pool: Sequence[int] = ()) -> Scene:
    """Paste ``num_items`` (inclusive range) random items on a black canvas.

    Args:
        images: ``[N, 28, 28] uint8`` items; labels: ``[N]`` class ids.
        canvas_size: (H, W) of the scene.
        item_size: side of the rescaled item, in pixels, drawn uniformly (inclusive).
        fg_threshold: an item pixel is foreground (part of the mask) when its value > this.
        min_visible: a placement is retried when it would leave any instance (the new one
            or an earlier, occluded one) with less than this fraction of its own pixels.
        pool: indices to draw items from (all when empty).
    """
    height, width = canvas_size
    if item_size[1] > min(height, width):
        raise ValueError(f'item_size {item_size} does not fit a canvas of {canvas_size}')
    canvas = np.zeros((height, width), dtype=np.uint8)
    instances: List[SceneInstance] = []
    full_area: List[int] = []
    candidates = np.asarray(pool) if len(pool) else np.arange(len(images))
    target = int(rng.integers(num_items[0], num_items[1] + 1))
    for _ in range(target):
        for _try in range(max_tries):
            idx = int(rng.choice(candidates))
            size = int(rng.integers(item_size[0], item_size[1] + 1))
            item = _resize_item(images[idx], size)
            item_mask = item > fg_threshold
            if item_mask.sum() < 16:
                continue
            y = int(rng.integers(0, height - size + 1))
            x = int(rng.integers(0, width - size + 1))
            new_mask = np.zeros((height, width), dtype=bool)
            new_mask[y:y + size, x:x + size] = item_mask
            # an earlier instance keeps only what the new item does not cover
            remaining = [inst.mask & ~new_mask for inst in instances]
            if any(r.sum() < min_visible * a for r, a in zip(remaining, full_area)):
                continue
            for inst, r in zip(instances, remaining):
                inst.mask = r
            region = canvas[y:y + size, x:x + size]
            region[item_mask] = item[item_mask]
            instances.append(SceneInstance(int(labels[idx]), new_mask, idx))
            full_area.append(int(new_mask.sum()))
            break
    return Scene(canvas, instances)
