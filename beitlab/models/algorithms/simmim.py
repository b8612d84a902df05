"""SimMIM: mask tokens in, a linear layer regresses raw pixels, l1 on masked pixels.

Xie et al., "SimMIM: A Simple Framework for Masked Image Modeling" (CVPR 2022),
Sec. 3: the encoder sees all patches with masked ones replaced by a learnable
mask token (here BEiTViT's ``mask`` argument), random masking of 32 px squares at
ratio 0.6 (``SimMIMMaskGenerator`` in the data pipeline), a one-layer prediction
head and an l1 loss on the raw pixels of masked patches.
"""
from typing import Dict, Optional, Tuple

from torch import Tensor

from beitlab.registry import MODELS

from .mae import prediction_to_pixels
from .mim_base import MIMRegressionBase

__all__ = ['SimMIM']


@MODELS.register_module()
class SimMIM(MIMRegressionBase):
    """Masked regression of a per-patch target from the tokens of a masked image.

    Args:
        backbone: BEiTViT config/module (its ``mask_token`` replaces masked patches).
        head: ``PatchRegressionHead`` config/module (``loss='l1'`` for SimMIM).
        target_generator: per-patch target; SimMIM uses
            ``PixelTarget(norm_pix=False)`` (raw pixels of the normalised image).
        data_preprocessor, init_cfg: as in mmengine.

    The mask comes from the data pipeline: ``data_samples[i].mask`` [H/P, W/P] bool.
    """

    def _masked_patch_tokens(self, img: Tensor, mask: Optional[Tensor]) -> Tensor:
        """img: [B, C, H, W]; mask: [B, H/P, W/P] bool -> patch tokens [B, N, D]."""
        if mask is None:
            raise ValueError(f'{type(self).__name__}: no data_samples[i].mask; add a mask '
                             'generator to the data pipeline (e.g. SimMIMMaskGenerator)')
        tokens = self.backbone.forward_features(img, mask)  # [B, 1+N, D]
        return tokens[:, self.backbone.num_extra_tokens:]

    def loss(self, img: Tensor, mask: Optional[Tensor]) -> Dict[str, Tensor]:
        """img: [B, C, H, W]; mask: [B, H/P, W/P] bool, True = masked."""
        patches = self._masked_patch_tokens(img, mask)
        target = self.target_generator(img)  # [B, N, C_t]
        return self.head.loss(patches, target, mask)

    def reconstruct(self, img: Tensor,
                    mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """The head's pixels for every patch of ``img`` [B, C, H, W] masked by ``mask``
        [B, H/P, W/P] bool -> ``(pred [B, C, H, W]`` in the space of ``img``, ``mask``);
        a pixel target only (a ``norm_pix`` target is un-normalised per patch)."""
        pred = self.head(self._masked_patch_tokens(img, mask))  # [B, N, P*P*C]
        pixels = prediction_to_pixels(pred, img, self.target_generator)
        P = self.backbone.patch_size
        return pixels, mask.bool().reshape(img.shape[0], img.shape[-2] // P, img.shape[-1] // P)
