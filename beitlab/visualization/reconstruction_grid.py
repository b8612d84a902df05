"""Side-by-side grids of original and reconstructed images (tokenizer inspection)."""
from typing import Optional

import numpy as np
import torch

__all__ = ['reconstruction_grid']


def reconstruction_grid(originals: torch.Tensor, reconstructions: torch.Tensor,
                        ncols: Optional[int] = None, pad: int = 2) -> np.ndarray:
    """Tile image pairs: each cell shows an original (left) and its reconstruction (right).

    Args:
        originals: [N, C, H, W] float in [0, 1] (C = 1 or 3, RGB).
        reconstructions: same shape.
        ncols: pairs per row (default ``ceil(sqrt(N))``).
        pad: white pixels between cells.

    Returns:
        [rows * (H + pad) + pad, cols * (2W + pad) + pad, 3] uint8 RGB.
    """
    if originals.shape != reconstructions.shape or originals.dim() != 4:
        raise ValueError(f'expected two [N, C, H, W] tensors of one shape, got '
                         f'{tuple(originals.shape)} and {tuple(reconstructions.shape)}')
    n, c, h, w = originals.shape
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    pairs = torch.cat([originals, reconstructions], dim=3).detach().float().clamp(0, 1).cpu()
    if c == 1:
        pairs = pairs.expand(-1, 3, -1, -1)
    grid = np.full((nrows * (h + pad) + pad, ncols * (2 * w + pad) + pad, 3), 255, np.uint8)
    cells = (pairs.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (2 * w + pad)
        grid[y:y + h, x:x + 2 * w] = cells[i]
    return grid
