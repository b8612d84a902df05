"""BEiT: BERT pre-training of image transformers (Bao et al., 2021, Sec. 2.2-2.3).

The corrupted image (masked patches replaced by ``[MASK]``) goes through the ViT; the MIM
head predicts, for each masked patch, the visual token a frozen tokenizer gives that patch.
"""
from typing import Optional

from mmengine.structures import BaseDataElement
from torch import Tensor

from beitlab.registry import MODELS

from .base import MIMAlgorithm, PartCfg

__all__ = ['BEiT']


@MODELS.register_module()
class BEiT(MIMAlgorithm):
    """Masked image modeling with visual tokens (BEiT Sec. 2.3; the second stage of Sec. 2.4).

    Args:
        backbone: MODELS config or module (``BEiTViT`` with ``final_norm=True``); called as
            ``forward_features(img_vit, mask) -> [B, 1+N, D]``.
        target_generator: TARGET_GENERATORS config or module (``VisualTokenTarget``):
            ``forward(img_tok, patch_grid) -> [B, N] int64``.
        head: MODELS config or module (``MIMHead``).
        data_preprocessor: defaults to ``TwoViewDataPreprocessor``.

    Inputs (after the data preprocessor): ``inputs = [img_vit [B, 3, H, W],
    img_tok [B, 3, h, w]]`` and ``data_samples[i].mask`` [H/P, W/P] bool.
    """

    default_data_preprocessor = dict(type='TwoViewDataPreprocessor')

    def __init__(self, backbone: PartCfg, target_generator: PartCfg, head: PartCfg,
                 data_preprocessor: PartCfg = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(backbone, head, target_generator, data_preprocessor, init_cfg)
        if getattr(self.backbone, 'norm', None) is None:
            raise ValueError('BEiT needs the backbone final LayerNorm (final_norm=True, '
                             "out_type other than 'avg_featmap'); the MIM head reads normed tokens")
        self.head.check_vocab_size(self.target_generator.vocab_size)

    def loss(self, inputs: list[Tensor], data_samples: list[BaseDataElement]) -> dict[str, Tensor]:
        """MIM loss (BEiT Sec. 2.3, Eq. 1): CE of the head on the masked patches against the tokens."""
        img_vit, img_tok = inputs
        mask = self.stack_masks(data_samples, img_vit.device)           # [B, h, w]
        target = self.target_generator(img_tok, patch_grid=mask.shape[-2:])  # [B, N] int64
        # Only the masked patches' outputs enter the loss: the backbone's last layer
        # computes just those (keys/values from all tokens); same values as
        # extract_feat(img_vit, mask)[:, 1:][mask].
        feats = self.backbone.forward_masked(img_vit, mask)            # [M, D]
        return self.head.loss(feats, target, mask.flatten(1))

    def predict(self, inputs: list[Tensor],
                data_samples: list[BaseDataElement]) -> list[BaseDataElement]:
        """Fill each sample with ``pred_tokens`` and ``target_tokens`` ([h, w] int64, every
        patch) and ``correct`` ([h, w] bool, pred == target); the mask is kept."""
        img_vit, img_tok = inputs
        mask = self.stack_masks(data_samples, img_vit.device)
        B, h, w = mask.shape
        target = self.target_generator(img_tok, patch_grid=(h, w)).view(B, h, w)
        feats = self.extract_feat(img_vit, mask)
        logits = self.head(feats[:, self.backbone.num_extra_tokens:])  # [B, N, V]
        pred = logits.argmax(-1).view(B, h, w)
        for i, sample in enumerate(data_samples):
            sample.pred_tokens = pred[i]
            sample.target_tokens = target[i]
            sample.correct = pred[i] == target[i]
        return data_samples

    def forward_tensor(self, inputs: list[Tensor],
                       data_samples: Optional[list[BaseDataElement]] = None) -> Tensor:
        """Logits of every patch ``[B, N, V]``: of the masked input when the samples carry
        masks, of the intact image otherwise."""
        img_vit = self.image_view(inputs)
        mask = self.stack_masks(data_samples, img_vit.device, required=False)
        return self.head(self.extract_feat(img_vit, mask)[:, self.backbone.num_extra_tokens:])
