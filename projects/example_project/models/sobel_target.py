"""A custom target generator: the Sobel edge magnitude of every pixel of a patch.

Registered into beitlab's TARGET_GENERATORS from outside the package; the config loads
this module with ``custom_imports`` and names it ``SobelEdgeTarget``. It follows the
TARGET_GENERATORS contract: ``forward(img [B, C, H, W]) -> [B, N, P*P]`` float.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beitlab.models.targets.pixels import patchify
from beitlab.registry import TARGET_GENERATORS


@TARGET_GENERATORS.register_module()
class SobelEdgeTarget(nn.Module):
    """Per-patch Sobel gradient magnitude of the grey image, ``[B, N, P*P]``.

    Args:
        patch_size: ViT patch size P.
    """

    def __init__(self, patch_size: int = 16) -> None:
        super().__init__()
        self.patch_size = patch_size
        kx = torch.tensor([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]])
        self.register_buffer('kernel', torch.stack([kx, kx.t()]).unsqueeze(1), persistent=False)

    @torch.no_grad()
    def forward(self, img: Tensor) -> Tensor:
        grey = img.float().mean(dim=1, keepdim=True)                       # [B, 1, H, W]
        grad = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode='replicate'), self.kernel)  # [B, 2, H, W]
        magnitude = grad.pow(2).sum(dim=1, keepdim=True).sqrt()           # [B, 1, H, W]
        return patchify(magnitude, self.patch_size)                       # [B, N, P*P]
