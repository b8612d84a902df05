"""Pictures of masked image modeling: the mask and which masked tokens were predicted right."""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.visualization import Visualizer

from beitlab.registry import VISUALIZERS

__all__ = ['MIMVisualizer', 'paint_patches']

RGB = Tuple[int, int, int]


def paint_patches(img: np.ndarray, where: np.ndarray, colour: RGB, alpha: float) -> np.ndarray:
    """Blend ``colour`` into the patches of ``img`` [H, W, 3] uint8 RGB where
    ``where`` [h, w] bool is True (patch grid, row-major like the tokens)."""
    h, w = where.shape
    if img.shape[0] % h or img.shape[1] % w:
        raise ValueError(f'image {img.shape[:2]} is not a whole number of patches of the '
                         f'{h} x {w} grid')
    ph, pw = img.shape[0] // h, img.shape[1] // w
    cell_mask = np.kron(where.astype(np.float32), np.ones((ph, pw), np.float32))[..., None]
    out = img.astype(np.float32)
    out = (1 - alpha * cell_mask) * out + alpha * cell_mask * np.asarray(colour, np.float32)
    return out.clip(0, 255).round().astype(np.uint8)


@VISUALIZERS.register_module()
class MIMVisualizer(Visualizer):
    """Rows of panels for BEiT-style models (BEiT Sec. 2.3): the ViT view, the corrupted
    input (masked patches gray), the masked patches coloured right (green) / wrong (red),
    and optional extra panels (e.g. decoded tokens), each upscaled by ``scale``.

    Args:
        scale: nearest-neighbour upscaling of each panel.
        Other arguments as mmengine's ``Visualizer``.
    """

    GREEN: RGB = (60, 200, 60)
    RED: RGB = (220, 50, 50)
    GRAY: RGB = (128, 128, 128)

    def __init__(self, name: str = 'mim_visualizer', scale: int = 4, **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.scale = scale

    def draw_mim_row(self, view: np.ndarray, mask: np.ndarray, correct: np.ndarray,
                     extra_panels: Sequence[np.ndarray] = ()) -> np.ndarray:
        """One row: ``view`` [H, W, 3] uint8 RGB, ``mask`` and ``correct`` [h, w] bool."""
        if mask.shape != correct.shape:
            raise ValueError(f'mask {mask.shape} and correct {correct.shape} differ')
        panels = [view, paint_patches(view, mask, self.GRAY, 1.0),
                  paint_patches(paint_patches(view, mask & correct, self.GREEN, 0.6),
                                mask & ~correct, self.RED, 0.6)]
        size = view.shape[1::-1]
        panels += [cv2.resize(np.ascontiguousarray(p), size) for p in extra_panels]
        up = [cv2.resize(np.ascontiguousarray(p), None, fx=self.scale, fy=self.scale,
                         interpolation=cv2.INTER_NEAREST) for p in panels]
        sep = np.full((up[0].shape[0], 4, 3), 255, np.uint8)
        row = [x for p in up for x in (p, sep)][:-1]
        return np.concatenate(row, axis=1)

    def stack_rows(self, rows: Sequence[np.ndarray], name: Optional[str] = None,
                   step: int = 0) -> np.ndarray:
        """Stack rows with white gaps; with ``name`` also send it to the vis backends."""
        gap = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
        grid = np.concatenate([x for r in rows for x in (r, gap)][:-1], axis=0)
        if name is not None:
            self.add_image(name, grid, step)
        return grid
