"""HOG (MaskFeat) and pixel (MAE / SimMIM) targets, and SimMIM's coarse mask generator."""
import math

import numpy as np
import pytest
import torch

from beitlab.masking.simmim import SimMIMMaskGenerator
from beitlab.models.targets.hog import HOGTarget
from beitlab.models.targets.pixels import PixelTarget, patchify, unpatchify


def _edge_image(angle_deg: float, size: int = 32) -> torch.Tensor:
    """A step edge whose intensity gradient points along ``angle_deg`` (image x right, y down)."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                            torch.arange(size, dtype=torch.float32), indexing='ij')
    c = (size - 1) / 2
    t = math.radians(angle_deg)
    proj = (xs - c) * math.cos(t) + (ys - c) * math.sin(t)
    return (proj > 0).float().expand(1, 3, size, size).clone()


@pytest.mark.parametrize('angle, expected_bin', [(0, 0), (90, 4), (45, 2), (135, 6)])
def test_hog_edge_energy_in_orientation_bin(angle: float, expected_bin: int) -> None:
    # unsigned orientation in [0, pi) split into 9 bins of 20 degrees: 0 -> 0, 45 -> 2,
    # 90 -> 4, 135 -> 6 (bin = floor(angle / 20))
    hog = HOGTarget(patch_size=16, cell_size=8, nbins=9, gaussian_window=16)
    img = _edge_image(angle)
    hist = hog.cell_histograms(img)            # [1, 3, 9, 4, 4]; normalised per cell
    raw = hist.sum(dim=(0, 1, 3, 4))           # energy per bin over the image
    assert int(raw.argmax()) == expected_bin
    assert raw[expected_bin] > 0.8 * raw.sum()
    out = hog(img)
    assert out.shape == (1, 4, 2 * 2 * 3 * 9)
    # flat regions have no gradient at all
    assert torch.all(hog(torch.ones(1, 3, 32, 32)) == 0)


def _reference_hog(img: np.ndarray, patch: int, cell: int, nbins: int, window: int) -> np.ndarray:
    """Loop re-implementation: Sobel on reflect-padded channels, Gaussian-weighted votes per
    cell, l2 norm per cell, cells of a patch concatenated as (cell row, cell col, channel, bin)."""
    C, H, W = img.shape
    pad = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode='reflect')
    n = np.arange(window, dtype=np.float64)
    n = (n - n.mean()) / (window / 2)
    g1 = np.exp(-0.5 * n ** 2)
    g = np.outer(g1, g1)
    g /= g.sum()
    hist = np.zeros((C, nbins, H // cell, W // cell))
    for c in range(C):
        for y in range(H):
            for x in range(W):
                win = pad[c, y:y + 3, x:x + 3]
                gx = (win[:, 0] * [1, 2, 1]).sum() - (win[:, 2] * [1, 2, 1]).sum()
                gy = (win[0] * [1, 2, 1]).sum() - (win[2] * [1, 2, 1]).sum()
                mag = math.hypot(gx, gy) * g[y % window, x % window]
                b = math.floor(math.atan2(gy, gx) / math.pi * nbins) % nbins
                hist[c, b, y // cell, x // cell] += mag
    hist /= np.maximum(np.linalg.norm(hist, axis=1, keepdims=True), 1e-12)
    r = patch // cell
    out = []
    for py in range(H // patch):
        for px in range(W // patch):
            feats = [hist[:, :, py * r + i, px * r + j] for i in range(r) for j in range(r)]
            out.append(np.concatenate([f.reshape(-1) for f in feats]))
    return np.stack(out)


def test_hog_matches_loop_reference() -> None:
    torch.manual_seed(0)
    img = torch.rand(1, 3, 16, 16)
    hog = HOGTarget(patch_size=8, cell_size=4, nbins=9, gaussian_window=8)
    ref = _reference_hog(img[0].double().numpy(), patch=8, cell=4, nbins=9, window=8)
    assert torch.allclose(hog(img)[0].double(), torch.from_numpy(ref), atol=1e-5)


def test_hog_cell_larger_than_patch_repeats_cells() -> None:
    img = torch.rand(2, 3, 16, 16)
    big = HOGTarget(patch_size=4, cell_size=8, gaussian_window=0)(img)   # [2, 16, 27]
    per_cell = HOGTarget(patch_size=8, cell_size=8, gaussian_window=0)(img)  # [2, 4, 27]
    assert big.shape == (2, 16, 27)
    # patch (row 1, col 2) lies in cell (0, 1)
    assert torch.equal(big[:, 1 * 4 + 2], per_cell[:, 0 * 2 + 1])


def test_pixel_targets_patch_order_and_normalisation() -> None:
    torch.manual_seed(0)
    img = torch.randn(2, 3, 16, 16) * 3 + 1
    raw = PixelTarget(patch_size=4, norm_pix=False)(img)
    assert raw.shape == (2, 16, 48)
    # patch (row 2, col 1) holds the pixels of that 4 x 4 square, (p, q, c) order
    expected = img[1, :, 8:12, 4:8].permute(1, 2, 0).reshape(-1)
    assert torch.equal(raw[1, 2 * 4 + 1], expected)
    assert torch.equal(unpatchify(patchify(img, 4), 4, (4, 4), 3), img)

    norm = PixelTarget(patch_size=4, norm_pix=True)(img)
    assert torch.allclose(norm.mean(-1), torch.zeros(2, 16), atol=1e-5)
    assert torch.allclose(norm.var(-1, unbiased=False), torch.ones(2, 16), atol=1e-4)
    manual = (raw - raw.mean(-1, keepdim=True)) / (raw.var(-1, unbiased=False, keepdim=True)
                                                   + 1e-6).sqrt()
    assert torch.allclose(norm, manual)


def test_simmim_mask_is_coarse_and_has_the_ratio() -> None:
    gen = SimMIMMaskGenerator(img_size=32, mask_patch_size=8, model_patch_size=4,
                              mask_ratio=0.6)
    assert gen.input_size == (8, 8)
    np.random.seed(0)
    for _ in range(5):
        mask = gen()
        assert mask.shape == (8, 8) and mask.dtype == bool
        blocks = mask.reshape(4, 2, 4, 2).transpose(0, 2, 1, 3).reshape(16, 4)
        assert np.all(blocks.all(1) | ~blocks.any(1))       # each 8 px square all-or-nothing
        assert blocks.all(1).sum() == math.ceil(0.6 * 16)   # 10 of 16 squares
    with pytest.raises(ValueError, match='mask_patch_size'):
        SimMIMMaskGenerator(img_size=32, mask_patch_size=6, model_patch_size=4)
