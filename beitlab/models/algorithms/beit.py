"""BEiT: BERT pre-training of image transformers (Bao et al., 2021, Sec. 2.2-2.3).

The corrupted image (masked patches replaced by ``[MASK]``) goes through the ViT; the MIM
head predicts, for each masked patch, the visual token a frozen tokenizer gives that patch.
"""
from typing import Optional, Union

import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from beitlab.registry import MODELS, TARGET_GENERATORS

__all__ = ['BEiT']


@MODELS.register_module()
class BEiT(BaseModel):
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

    def __init__(self, backbone: Union[dict, nn.Module], target_generator: Union[dict, nn.Module],
                 head: Union[dict, nn.Module], data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='TwoViewDataPreprocessor')
        if isinstance(data_preprocessor, dict):  # beitlab's registry, whatever the scope
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone) if isinstance(backbone, dict) else backbone
        self.target_generator = (TARGET_GENERATORS.build(target_generator)
                                 if isinstance(target_generator, dict) else target_generator)
        self.head = MODELS.build(head) if isinstance(head, dict) else head
        if getattr(self.backbone, 'norm', None) is None:
            raise ValueError('BEiT needs the backbone final LayerNorm (final_norm=True, '
                             "out_type other than 'avg_featmap'); the MIM head reads normed tokens")
        self.head.check_vocab_size(self.target_generator.vocab_size)

    @staticmethod
    def _stack_masks(data_samples: list[BaseDataElement], device: torch.device) -> Tensor:
        """data_samples[i].mask [h, w] -> [B, h, w] bool."""
        if not data_samples or any('mask' not in s for s in data_samples):
            raise KeyError('BEiT needs data_samples[i].mask ([H/P, W/P] bool); add '
                           'GenerateMask and PackTwoViewInputs to the pipeline')
        return torch.stack([torch.as_tensor(s.mask) for s in data_samples]).to(device).bool()

    def extract_feat(self, img: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """img: [B, 3, H, W], mask: [B, H/P, W/P] bool -> tokens [B, 1+N, D] after final norm."""
        return self.backbone.forward_features(img, mask)

    def loss(self, inputs: list[Tensor], data_samples: list[BaseDataElement]) -> dict[str, Tensor]:
        """MIM loss (BEiT Sec. 2.3, Eq. 1): CE of the head on the masked patches against the tokens."""
        img_vit, img_tok = inputs
        mask = self._stack_masks(data_samples, img_vit.device)          # [B, h, w]
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
        mask = self._stack_masks(data_samples, img_vit.device)
        B, h, w = mask.shape
        target = self.target_generator(img_tok, patch_grid=(h, w)).view(B, h, w)
        feats = self.extract_feat(img_vit, mask)
        logits = self.head(feats[:, 1:])                                # [B, N, V]
        pred = logits.argmax(-1).view(B, h, w)
        for i, sample in enumerate(data_samples):
            sample.pred_tokens = pred[i]
            sample.target_tokens = target[i]
            sample.correct = pred[i] == target[i]
        return data_samples

    def forward(self, inputs: list[Tensor], data_samples: Optional[list[BaseDataElement]] = None,
                mode: str = 'tensor'):
        """``'loss'`` -> dict(loss, mlm_acc); ``'predict'`` -> data samples with tokens;
        ``'tensor'`` -> logits of every patch ``[B, N, V]`` (masked input when samples
        carry masks, the intact image otherwise)."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            img_vit = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
            mask = self._stack_masks(data_samples, img_vit.device) if data_samples else None
            return self.head(self.extract_feat(img_vit, mask)[:, 1:])
        raise ValueError(f"BEiT.forward: mode={mode!r} is not 'loss', 'predict' or 'tensor'")
