"""MaskFeat: mask tokens in, HOG of the masked patches out, l2 loss.

Wei et al., "Masked Feature Prediction for Self-Supervised Visual Pre-Training"
(CVPR 2022), Sec. 3: the same masked-input encoder and linear head as SimMIM,
but the target is the HOG descriptor of each patch (``HOGTarget``) and the loss is
l2 on masked patches. Masks are block-wise (BEiT's generator) at ratio 0.4 in the
paper's ViT recipe.
"""

from beitlab.registry import MODELS

from .simmim import SimMIM

__all__ = ['MaskFeat']


@MODELS.register_module()
class MaskFeat(SimMIM):
    """MaskFeat pre-training (Wei et al. 2022): SimMIM's computation with a HOG target.

    Args: as :class:`SimMIM`; configs pass ``target_generator=dict(type='HOGTarget')``
    and ``head=dict(type='PatchRegressionHead', loss='l2',
    out_channels=<HOGTarget.out_channels>)``.
    """
