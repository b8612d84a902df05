"""PeCo: the Phase-1 dVAE trained with an added perceptual loss.

Dong et al., "PeCo: Perceptual Codebook for BERT Pre-training of Vision
Transformers" (AAAI 2023), Sec. 3.2: the tokenizer's objective gains a perceptual
term (feature distance under a frozen network) so that the codebook captures what a
network perceives rather than exact pixels; BEiT pre-training then predicts these
"perceptual" tokens unchanged. (PeCo also adds an adversarial loss, not used here.)

A ``PerceptualDVAE`` checkpoint holds exactly the keys of a ``DVAE`` (the frozen
network is not saved), so BEiT pre-training loads it with a plain ``DVAE`` config.
"""
from typing import Dict, Optional, Union

import torch
from torch import nn

from beitlab.registry import MODELS, TOKENIZERS

from .dvae import DVAE

__all__ = ['PerceptualDVAE']


@TOKENIZERS.register_module()
class PerceptualDVAE(DVAE):
    """:class:`DVAE` whose ``loss`` adds ``loss_perceptual`` (PeCo Sec. 3.2, Eq. 3).

    Args:
        perceptual_loss: a MODELS loss config/module called as
            ``loss(recon [B, C, h, w], img [B, C, h, w]) -> scalar`` on images in
            [0, 1]; ``type`` defaults to ``PerceptualLoss`` (a frozen network from a
            checkpoint). None
            for a frozen tokenizer that only produces tokens.
        **dvae_kwargs: every :class:`DVAE` argument.
    """

    def __init__(self, perceptual_loss: Optional[Union[dict, nn.Module]] = None,
                 **dvae_kwargs) -> None:
        super().__init__(**dvae_kwargs)
        if isinstance(perceptual_loss, dict):
            perceptual_loss = MODELS.build(dict(dict(type='PerceptualLoss'), **perceptual_loss))
        self.perceptual_loss = perceptual_loss

    def loss(self, img: torch.Tensor) -> Dict[str, torch.Tensor]:
        """DVAE losses plus ``loss_perceptual`` on the (unclamped) reconstruction."""
        if self.perceptual_loss is None:
            raise ValueError('PerceptualDVAE.loss needs perceptual_loss (got None); set it in '
                             'the config to train, leave it out only for a frozen tokenizer')
        out = self(img)
        losses = self.loss_from_output(out, img)
        losses['loss_perceptual'] = self.perceptual_loss(out['recon'], img)
        return losses
