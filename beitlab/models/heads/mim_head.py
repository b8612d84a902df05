"""The masked-image-modeling head of BEiT (Bao et al., 2021, Sec. 2.3).

``logits_i = H_L^i W_p + b_p`` for the masked patches i only, and
``L_MIM = CE(logits_i, v_i)`` averaged over every masked patch of the batch, as official
BEiT's ``nn.CrossEntropyLoss()(lm_head(x[bool_masked_pos]), labels)``.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from beitlab.registry import MODELS

__all__ = ['MIMHead']


@MODELS.register_module()
class MIMHead(BaseModule):
    """Linear token classifier over the masked patches; cross-entropy and ``mlm_acc``.

    Args:
        in_channels: feature size D.
        vocab_size: |V|, the tokenizer's codebook size (8192 for DALL-E).
        init_std: std of the truncated normal of ``fc.weight`` (official: 0.02, truncated
            at +-std as ``trunc_normal_(w, std=std, a=-std, b=std)``); bias zero.

    Parameters: ``fc.weight [V, D]``, ``fc.bias [V]`` (official ``lm_head``).
    """

    def __init__(self, in_channels: int = 768, vocab_size: int = 8192, init_std: float = 0.02,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.vocab_size = vocab_size
        self.fc = nn.Linear(in_channels, vocab_size)
        nn.init.trunc_normal_(self.fc.weight, std=init_std, a=-init_std, b=init_std)
        nn.init.zeros_(self.fc.bias)

    def check_vocab_size(self, target_vocab_size: int) -> None:
        """Raise ``ValueError`` unless the head predicts exactly the target's vocabulary."""
        if int(target_vocab_size) != self.vocab_size:
            raise ValueError(f'MIMHead predicts vocab_size={self.vocab_size} token ids but the '
                             f'target generator (tokenizer) has a vocabulary of '
                             f'{target_vocab_size}; set head.vocab_size={target_vocab_size}')

    @staticmethod
    def _patch_tokens(feats: Tensor, num_patches: int) -> Tensor:
        """feats: [B, 1+N, D] (CLS first) or [B, N, D] -> [B, N, D]."""
        if feats.shape[1] == num_patches + 1:
            return feats[:, 1:]
        if feats.shape[1] == num_patches:
            return feats
        raise ValueError(f'MIMHead: features of shape {tuple(feats.shape)} do not match a mask '
                         f'of {num_patches} patches (expected [B, 1+N, D] or [B, N, D])')

    def forward(self, feats: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Logits of the masked patches ``[M, V]`` (M = masked patches in the batch,
        batch-major then row-major), or of every patch ``[B, N, V]`` when ``mask`` is None.

        Args:
            feats: [B, 1+N, D] backbone tokens after the final norm (CLS dropped here),
                or [M, D] the masked tokens only (``BEiTViT.forward_masked``).
            mask: [B, N] bool, True = masked.
        """
        if mask is None:
            return self.fc(feats)
        if feats.dim() == 2:  # already the masked tokens, e.g. BEiTViT.forward_masked
            if feats.shape[0] != int(mask.sum()):
                raise ValueError(f'MIMHead: {feats.shape[0]} masked-token features for a mask '
                                 f'that selects {int(mask.sum())} patches')
            return self.fc(feats)
        x = self._patch_tokens(feats, mask.shape[1])
        return self.fc(x[mask])

    def loss(self, feats: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Cross-entropy on the masked patches only.

        Args:
            feats: [B, 1+N, D] backbone tokens after the final norm, or [M, D] the
                masked tokens only (batch-major, then row-major).
            target: [B, N] int64 token ids of every patch.
            mask: [B, N] bool, True = masked.

        Returns:
            ``loss`` (mean CE over the masked patches of the batch) and ``mlm_acc`` (top-1
            accuracy on them, no gradient).
        """
        mask = mask.flatten(1).bool()
        if target.shape != mask.shape:
            raise ValueError(f'MIMHead: target shape {tuple(target.shape)} differs from the '
                             f'mask shape {tuple(mask.shape)}; both must be [B, N]')
        if not mask.any():
            raise ValueError('MIMHead: the mask selects no patch; the MIM loss is undefined')
        logits = self(feats, mask)  # [M, V]
        labels = target[mask]       # [M]
        loss = F.cross_entropy(logits.float(), labels)
        with torch.no_grad():
            mlm_acc = (logits.argmax(-1) == labels).float().mean()
        return dict(loss=loss, mlm_acc=mlm_acc)
