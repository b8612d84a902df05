"""Blockwise masking of BEiT (Bao et al., 2021, Sec. 2.5 and Algorithm 1).

Follows the rules of the official ``MaskingGenerator`` (microsoft/unilm,
``beit/masking_generator.py``): blocks of at least ``min_num_patches`` patches with
a log-uniform aspect ratio in ``[min_aspect, max_aspect]`` are added, each with up
to 10 tries, until ``num_masking_patches`` patches are masked or no block fits.
"""
import math
import random
from typing import Optional, Union

import numpy as np

from beitlab.registry import MASK_GENERATORS

from .checks import check_mask_count

__all__ = ['BlockwiseMaskGenerator']


@MASK_GENERATORS.register_module()
class BlockwiseMaskGenerator:
    """Blockwise mask over an ``input_size`` patch grid (BEiT Sec. 2.5, Algorithm 1).

    Official BEiT stops as soon as no block of the allowed shapes adds a patch, so
    a draw may mask fewer than ``num_masking_patches`` patches (never more). With
    ``exact=True`` the shortfall is filled afterwards: random unmasked patches that
    touch the mask (4-neighbourhood) are added one at a time, so the mask stays
    blocky; only if no unmasked patch touches the mask is any unmasked patch used.

    Args:
        input_size: patch grid ``H`` or ``(H, W)``; 14 for 224 px and 16 px patches.
        num_masking_patches: patches to mask per image (75 of 196 in BEiT).
        min_num_patches: smallest block area (16 in BEiT pre-training).
        max_num_patches: largest block area; ``None`` means ``num_masking_patches``.
        min_aspect: smallest aspect ratio (h/w) of a block.
        max_aspect: largest aspect ratio; ``None`` means ``1 / min_aspect``.
        exact: fill the shortfall so that every mask has exactly
            ``num_masking_patches`` patches (not in official BEiT).
        max_attempts: tries per block (10 in BEiT).

    Settings that mask no patch or every patch (``num_masking_patches`` outside
    ``(0, H*W)``, or blocks that never fit the grid) are a ``ValueError``.
    """

    def __init__(self,
                 input_size: Union[int, tuple[int, int]] = 14,
                 num_masking_patches: int = 75,
                 min_num_patches: int = 16,
                 max_num_patches: Optional[int] = None,
                 min_aspect: float = 0.3,
                 max_aspect: Optional[float] = None,
                 exact: bool = False,
                 max_attempts: int = 10) -> None:
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        self.input_size: tuple[int, int] = tuple(input_size)
        self.height, self.width = self.input_size
        self.num_patches = self.height * self.width
        check_mask_count('BlockwiseMaskGenerator', f'num_masking_patches={num_masking_patches}',
                         num_masking_patches, self.num_patches, f'{self.height}x{self.width}')
        if min_aspect <= 0:
            raise ValueError(f'BlockwiseMaskGenerator: min_aspect={min_aspect} must be > 0')
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = num_masking_patches if max_num_patches is None else max_num_patches
        max_aspect = max_aspect or 1 / min_aspect
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))
        self.exact = exact
        self.max_attempts = max_attempts
        self._check_blocks_fit()

    def _check_blocks_fit(self, draws: int = 16) -> None:
        """Raise ``ValueError`` when no block of the allowed areas and aspects fits the grid
        (every official draw would be empty; ``exact=True`` would then scatter single
        patches). Uses its own seeded generator, so the global ``random`` state is kept."""
        rng = random.Random(0)
        if any(self._draw_blocks(rng)[1] > 0 for _ in range(draws)):
            return
        raise ValueError(
            f'BlockwiseMaskGenerator: no block fits, so every mask is empty: blocks of '
            f'{self.min_num_patches}..{min(self.max_num_patches, self.num_masking_patches)} '
            f'patches with aspect ratio in [{math.exp(self.log_aspect_ratio[0]):.3g}, '
            f'{math.exp(self.log_aspect_ratio[1]):.3g}] must be shorter and narrower than the '
            f'{self.height}x{self.width} grid and add at most num_masking_patches='
            f'{self.num_masking_patches} patches ({draws} trial masks were empty); lower '
            f'min_num_patches or use a larger grid')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(input_size={self.input_size}, '
                f'num_masking_patches={self.num_masking_patches}, '
                f'block_area=[{self.min_num_patches}, {self.max_num_patches}], '
                f'log_aspect={self.log_aspect_ratio}, exact={self.exact})')

    def _mask_block(self, mask: np.ndarray, max_mask_patches: int, rng: random.Random) -> int:
        """Try to add one block of new patches; return how many were added (0 = none fit).

        A try draws an area uniformly in ``[min_num_patches, max_mask_patches]``
        and a log-uniform aspect ratio, rounds to ``h x w`` and places it uniformly;
        it is kept only if it adds between 1 and ``max_mask_patches`` new patches.
        """
        delta = 0
        for _ in range(self.max_attempts):
            target_area = rng.uniform(self.min_num_patches, max_mask_patches)
            aspect_ratio = math.exp(rng.uniform(*self.log_aspect_ratio))
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            # Official BEiT needs the block strictly narrower and shorter than the grid.
            if w < self.width and h < self.height:
                top = rng.randint(0, self.height - h)
                left = rng.randint(0, self.width - w)
                block = mask[top:top + h, left:left + w]
                num_new = h * w - int(block.sum())
                if 0 < num_new <= max_mask_patches:
                    block[...] = True
                    delta += num_new
            if delta > 0:
                break
        return delta

    def _fill_exact(self, mask: np.ndarray, missing: int, rng: random.Random) -> None:
        """Add ``missing`` unmasked patches, preferring those touching the mask."""
        for _ in range(missing):
            grown = np.zeros_like(mask)
            grown[1:] |= mask[:-1]
            grown[:-1] |= mask[1:]
            grown[:, 1:] |= mask[:, :-1]
            grown[:, :-1] |= mask[:, 1:]
            candidates = np.flatnonzero(grown & ~mask)
            if candidates.size == 0:
                candidates = np.flatnonzero(~mask)
            mask.flat[candidates[rng.randrange(candidates.size)]] = True

    def __call__(self, rng: Optional[random.Random] = None) -> np.ndarray:
        """Draw one mask.

        Args:
            rng: source of randomness; the ``random`` module's global generator
                (seeded per data-loader worker by mmengine) when ``None``.

        Returns:
            mask: [H, W] bool, True = masked, row-major like the patches.
        """
        rng = rng if rng is not None else random  # the module exposes the same methods
        mask, mask_count = self._draw_blocks(rng)
        if self.exact and mask_count < self.num_masking_patches:
            self._fill_exact(mask, self.num_masking_patches - mask_count, rng)
        return mask

    def _draw_blocks(self, rng) -> tuple[np.ndarray, int]:
        """Official BEiT's loop: add blocks until the count is reached or none fits."""
        mask = np.zeros(self.input_size, dtype=bool)
        mask_count = 0
        while mask_count < self.num_masking_patches:
            max_mask_patches = min(self.num_masking_patches - mask_count, self.max_num_patches)
            delta = self._mask_block(mask, max_mask_patches, rng)
            if delta == 0:
                break
            mask_count += delta
        return mask, mask_count
