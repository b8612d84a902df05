"""SimMIM: mask tokens in, a linear layer regresses raw pixels, l1 on masked pixels.

Xie et al., "SimMIM: A Simple Framework for Masked Image Modeling" (CVPR 2022),
Sec. 3: the encoder sees all patches with masked ones replaced by a learnable
mask token (here BEiTViT's ``mask`` argument), random masking of 32 px squares at
ratio 0.6 (``SimMIMMaskGenerator`` in the data pipeline), a one-layer prediction
head and an l1 loss on the raw pixels of masked patches.
"""
from typing import Dict, Optional

from torch import Tensor

from beitlab.registry import MODELS

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

    def loss(self, img: Tensor, mask: Optional[Tensor]) -> Dict[str, Tensor]:
        """img: [B, C, H, W]; mask: [B, H/P, W/P] bool, True = masked."""
        if mask is None:
            raise ValueError(f'{type(self).__name__}: no data_samples[i].mask; add a mask '
                             'generator to the data pipeline (e.g. SimMIMMaskGenerator)')
        tokens = self.backbone.forward_features(img, mask)  # [B, 1+N, D]
        patches = tokens[:, self.backbone.num_extra_tokens:]
        target = self.target_generator(img)  # [B, N, C_t]
        return self.head.loss(patches, target, mask)
