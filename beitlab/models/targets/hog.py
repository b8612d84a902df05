"""Histogram-of-oriented-gradients targets of MaskFeat.

Wei et al., "Masked Feature Prediction for Self-Supervised Visual Pre-Training"
(CVPR 2022), Sec. 3.2 and 4.1: the target of a masked patch is the HOG of that
patch: Sobel gradients per RGB channel, magnitudes weighted by a Gaussian window,
unsigned orientations voted into 9 bins within 8 x 8 px cells, each cell histogram
l2-normalised, and the cells of one ViT patch concatenated.

Everything is convolution, ``scatter_add`` and pooling, so the target runs on the
same device as the model, on the batch, without a CPU round trip.
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beitlab.registry import TARGET_GENERATORS

__all__ = ['HOGTarget']


def gaussian_window_2d(size: int, std: float) -> Tensor:
    """A ``[size, size]`` Gaussian that sums to one, centred between the middle pixels."""
    n = torch.arange(size, dtype=torch.float32)
    n = (n - n.mean()) / std
    w = torch.exp(-0.5 * n ** 2)
    kernel = w[:, None] * w[None, :]
    return kernel / kernel.sum()


@TARGET_GENERATORS.register_module()
class HOGTarget(nn.Module):
    """Per-patch HOG features of MaskFeat (Wei et al. 2022, Sec. 4.1).

    Args:
        patch_size: ViT patch size P; the image must be a multiple of it.
        cell_size: HOG cell size in pixels (8 in the paper). When it is smaller
            than P, a patch concatenates its ``(P / cell_size)^2`` cells; when larger,
            each patch takes the histogram of the cell it lies in.
        nbins: number of unsigned orientation bins over [0, pi) (9 in the paper).
        gaussian_window: side of the Gaussian window (std = side / 2) that weights
            the gradient magnitudes, tiled over the image (16 in the paper, i.e.
            one window per ViT patch); 0 turns it off.
        in_channels: image channels; HOG is computed per channel.

    Returns (``forward``): ``[B, N, C]`` float with N = (H/P)*(W/P) in row-major
    patch order and ``C = in_channels * nbins * max(1, P // cell_size)^2``; channel
    order is (cell row, cell col, image channel, bin).
    """

    GRAD_EPS = 1e-5

    def __init__(self,
                 patch_size: int = 16,
                 cell_size: int = 8,
                 nbins: int = 9,
                 gaussian_window: int = 16,
                 in_channels: int = 3) -> None:
        super().__init__()
        if patch_size % cell_size != 0 and cell_size % patch_size != 0:
            raise ValueError(f'HOGTarget: patch_size={patch_size} and cell_size={cell_size} '
                             'must divide one another')
        self.patch_size = patch_size
        self.cell_size = cell_size
        self.nbins = nbins
        self.gaussian_window = gaussian_window
        self.in_channels = in_channels
        sobel_x = torch.tensor([[1., 0., -1.], [2., 0., -2.], [1., 0., -1.]])
        # Correlation with sobel_x gives d/dx up to sign; orientation is unsigned,
        # so the sign convention does not change the bin.
        self.register_buffer('weight_x', sobel_x.view(1, 1, 3, 3).repeat(in_channels, 1, 1, 1),
                             persistent=False)
        sobel_y = sobel_x.t().reshape(1, 1, 3, 3)
        self.register_buffer('weight_y', sobel_y.repeat(in_channels, 1, 1, 1),
                             persistent=False)
        if gaussian_window:
            self.register_buffer('gaussian_kernel',
                                 gaussian_window_2d(gaussian_window, gaussian_window / 2),
                                 persistent=False)
        else:
            self.gaussian_kernel: Optional[Tensor] = None

    @property
    def out_channels(self) -> int:
        cells_per_patch = max(1, self.patch_size // self.cell_size) ** 2
        return self.in_channels * self.nbins * cells_per_patch

    def cell_histograms(self, img: Tensor) -> Tensor:
        """Cell histograms ``[B, C_img, nbins, H/cell, W/cell]``, l2-normalised over bins."""
        B, C, H, W = img.shape
        if C != self.in_channels:
            raise ValueError(f'HOGTarget: expected {self.in_channels} channels, '
                             f'got image {tuple(img.shape)}')
        if H % self.cell_size or W % self.cell_size:
            raise ValueError(f'HOGTarget: image {H}x{W} is not a multiple of '
                             f'cell_size={self.cell_size}')
        x = F.pad(img.float(), (1, 1, 1, 1), mode='reflect')
        gx = F.conv2d(x, self.weight_x, groups=C)  # [B, C, H, W]
        gy = F.conv2d(x, self.weight_y, groups=C)
        # Float rounding leaves +-1e-8 where a component is exactly zero (flat directions,
        # reflected borders); snapping it keeps such pixels out of the wrap-around bin.
        gx = torch.where(gx.abs() < self.GRAD_EPS, torch.zeros_like(gx), gx)
        gy = torch.where(gy.abs() < self.GRAD_EPS, torch.zeros_like(gy), gy)
        magnitude = torch.sqrt(gx ** 2 + gy ** 2)
        # Unsigned orientation: atan2 in [-pi, pi] -> [-nbins, nbins], floored, modulo nbins,
        # so theta and theta + pi share a bin (also for the -0.0 / +-pi corner cases).
        phase = torch.atan2(gy, gx) / math.pi * self.nbins
        bins = torch.remainder(phase.floor().long(), self.nbins)
        if self.gaussian_kernel is not None:
            g = self.gaussian_window
            if H % g or W % g:
                raise ValueError(f'HOGTarget: image {H}x{W} is not a multiple of '
                                 f'gaussian_window={g}')
            magnitude = magnitude * self.gaussian_kernel.repeat(H // g, W // g)
        hist = torch.zeros(B, C, self.nbins, H, W, dtype=magnitude.dtype, device=img.device)
        hist.scatter_add_(2, bins.unsqueeze(2), magnitude.unsqueeze(2))
        hist = F.avg_pool2d(hist.flatten(1, 2), self.cell_size) * self.cell_size ** 2  # sum-pool
        hist = hist.view(B, C, self.nbins, H // self.cell_size, W // self.cell_size)
        return F.normalize(hist, p=2, dim=2)

    @torch.no_grad()
    def forward(self, img: Tensor) -> Tensor:
        """img: [B, C, H, W] -> HOG per patch [B, N, out_channels]."""
        if img.shape[-2] % self.patch_size or img.shape[-1] % self.patch_size:
            raise ValueError(f'HOGTarget: image {tuple(img.shape)} is not a multiple of '
                             f'patch_size={self.patch_size}')
        hist = self.cell_histograms(img)  # [B, C, nbins, Hc, Wc]
        B, C, K, Hc, Wc = hist.shape
        P = self.patch_size
        hist = hist.permute(0, 3, 4, 1, 2)  # [B, Hc, Wc, C, K]
        if self.cell_size >= P:
            r = self.cell_size // P
            hist = hist.repeat_interleave(r, dim=1).repeat_interleave(r, dim=2)
            return hist.reshape(B, -1, C * K)
        r = P // self.cell_size
        hist = hist.reshape(B, Hc // r, r, Wc // r, r, C, K)
        hist = hist.permute(0, 1, 3, 2, 4, 5, 6)  # [B, h, w, r, r, C, K]
        return hist.reshape(B, (Hc // r) * (Wc // r), r * r * C * K)
