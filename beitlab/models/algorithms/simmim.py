"""SimMIM: mask tokens in, a linear layer regresses raw pixels, l1 on masked pixels.

Xie et al., "SimMIM: A Simple Framework for Masked Image Modeling" (CVPR 2022),
Sec. 3: the encoder sees all patches with masked ones replaced by a learnable
mask token (here BEiTViT's ``mask`` argument), random masking of 32 px squares at
ratio 0.6 (``SimMIMMaskGenerator`` in the data pipeline), a one-layer prediction
head and an l1 loss on the raw pixels of masked patches.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

from torch import Tensor

from beitlab.registry import MODELS

from .base import MIMAlgorithm
from .mae import prediction_to_pixels

__all__ = ['SimMIM']


@MODELS.register_module()
class SimMIM(MIMAlgorithm):
    """Masked regression of a per-patch target from the tokens of a masked image.

    Args:
        backbone: BEiTViT config/module (its ``mask_token`` replaces masked patches).
        head: ``PatchRegressionHead`` config/module (``loss='l1'`` for SimMIM).
        target_generator: per-patch target; SimMIM uses
            ``PixelTarget(norm_pix=False)`` (raw pixels of the normalised image).
        data_preprocessor, init_cfg: as in mmengine.

    The mask comes from the data pipeline: ``data_samples[i].mask`` [H/P, W/P] bool.
    Modes: ``'loss'`` and ``'tensor'`` (tokens of the intact image, ``[B, 1+N, D]``).
    """

    modes = ('loss', 'tensor')  # pre-training only: nothing to predict

    def _masked_patch_tokens(self, img: Tensor, mask: Tensor) -> Tensor:
        """img: [B, C, H, W]; mask: [B, H/P, W/P] bool -> patch tokens [B, N, D]."""
        tokens = self.backbone.forward_features(img, mask)  # [B, 1+N, D]
        return tokens[:, self.backbone.num_extra_tokens:]

    def loss(self, inputs: Union[Tensor, Sequence[Tensor]],
             data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """Loss of the head on the masked patches; ``inputs`` the image ``[B, C, H, W]``
        (or two views, the first is used) and ``data_samples[i].mask`` [H/P, W/P] bool,
        True = masked."""
        img = self.image_view(inputs)
        mask = self.stack_masks(data_samples, img.device)
        patches = self._masked_patch_tokens(img, mask)
        target = self.target_generator(img)  # [B, N, C_t]
        return self.head.loss(patches, target, mask)

    def forward_tensor(self, inputs: Union[Tensor, Sequence[Tensor]],
                       data_samples: Optional[list] = None) -> Tensor:
        """Tokens ``[B, 1+N, D]`` of the intact image (feature extraction)."""
        return self.extract_feat(inputs)

    def reconstruct(self, img: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
        """The head's pixels for every patch of ``img`` [B, C, H, W] masked by ``mask``
        [B, H/P, W/P] bool -> ``(pred [B, C, H, W]`` in the space of ``img``, ``mask``);
        a pixel target only (a ``norm_pix`` target is un-normalised per patch)."""
        if mask is None:
            raise ValueError(f'{type(self).__name__}.reconstruct needs a mask [B, H/P, W/P] '
                             'bool (it sees the whole image otherwise), got None')
        pred = self.head(self._masked_patch_tokens(img, mask))  # [B, N, P*P*C]
        pixels = prediction_to_pixels(pred, img, self.target_generator)
        P = self.backbone.patch_size
        return pixels, mask.bool().reshape(img.shape[0], img.shape[-2] // P, img.shape[-1] // P)
