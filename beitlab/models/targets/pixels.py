"""Pixel targets of MAE and SimMIM.

He et al., "Masked Autoencoders Are Scalable Vision Learners" (CVPR 2022), Sec. 3
"Reconstruction target": the pixels of each patch, normalised by that patch's own
mean and standard deviation (Table 1c: the normalised target is better).
Xie et al., "SimMIM" (CVPR 2022), Sec. 3.1 / 3.3: raw pixel values.
"""
from torch import Tensor, nn

from beitlab.registry import TARGET_GENERATORS

__all__ = ['patchify', 'unpatchify', 'PixelTarget']


def patchify(img: Tensor, patch_size: int) -> Tensor:
    """img: [B, C, H, W] -> patches [B, N, P*P*C], N = (H/P)*(W/P) row-major, (p, q, c) order."""
    B, C, H, W = img.shape
    P = patch_size
    if H % P or W % P:
        raise ValueError(f'patchify: image {tuple(img.shape)} is not a multiple of patch_size={P}')
    x = img.reshape(B, C, H // P, P, W // P, P)
    x = x.permute(0, 2, 4, 3, 5, 1)  # [B, h, w, P, P, C]
    return x.reshape(B, (H // P) * (W // P), P * P * C)


def unpatchify(patches: Tensor, patch_size: int, grid: tuple, channels: int = 3) -> Tensor:
    """patches: [B, N, P*P*C] -> img [B, C, h*P, w*P] (inverse of :func:`patchify`)."""
    B, N, _ = patches.shape
    h, w = grid
    P = patch_size
    x = patches.reshape(B, h, w, P, P, channels).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(B, channels, h * P, w * P)


@TARGET_GENERATORS.register_module()
class PixelTarget(nn.Module):
    """Per-patch pixels ``[B, N, P*P*C]``: normalised per patch (MAE) or raw (SimMIM).

    Args:
        patch_size: ViT patch size P.
        norm_pix: subtract each patch's mean and divide by its standard deviation
            (population variance, ``+ eps`` inside the square root), MAE Sec. 3.
        eps: keeps flat patches finite (MAE uses 1e-6).
    """

    def __init__(self, patch_size: int = 16, norm_pix: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.norm_pix = norm_pix
        self.eps = eps

    def forward(self, img: Tensor) -> Tensor:
        """img: [B, C, H, W] -> target [B, N, P*P*C] float (no gradient)."""
        target = patchify(img.detach().float(), self.patch_size)
        if self.norm_pix:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True, unbiased=False)
            target = (target - mean) / (var + self.eps).sqrt()
        return target
