"""BEiT v2: MIM on VQ-KD tokens, with the optional CLS-token patch aggregation.

Peng et al., "BEiT v2: Masked Image Modeling with Vector-Quantized Visual
Tokenizers" (2022), Sec. 2.2-2.3. The MIM part is BEiT's computation with a
``VisualTokenTarget`` around a ``VQKD`` tokenizer; this class adds the patch
aggregation branch: ``[CLS_L; patches_l]`` through a shallow neck, predicted by the
shared MIM head, its loss added to the MIM loss (Eq. 5).
"""
from typing import Optional, Union

from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from beitlab.registry import MODELS

from .base import build_part
from .beit import BEiT

__all__ = ['BEiTv2']


@MODELS.register_module()
class BEiTv2(BEiT):
    """BEiT with the BEiT v2 patch-aggregation branch.

    Args:
        backbone, target_generator, head, data_preprocessor, init_cfg: as :class:`BEiT`
            (target: ``VisualTokenTarget`` with a ``VQKD`` tokenizer).
        neck: ``PatchAggregationNeck`` config/module, or None for plain MIM on VQ-KD tokens.
            With a neck the backbone must have ``out_type='raw'`` and
            ``out_indices=(l - 1, L - 1)``: l is the layer whose patch tokens the neck
            aggregates (l = 9 of L = 12 in BEiT v2).

    Losses: ``loss`` / ``mlm_acc`` (final layer) and, with a neck, ``loss_cls_pt`` /
    ``mlm_acc_cls_pt`` (aggregation branch, same head).
    """

    def __init__(self, backbone: Union[dict, nn.Module], target_generator: Union[dict, nn.Module],
                 head: Union[dict, nn.Module], neck: Optional[Union[dict, nn.Module]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(backbone, target_generator, head, data_preprocessor, init_cfg)
        self.neck = build_part(neck)
        bb = self.backbone
        if self.neck is not None and (bb.out_type != 'raw' or len(bb.out_indices) != 2
                                      or bb.out_indices[1] != bb.num_layers - 1
                                      or bb.out_indices[0] >= bb.num_layers - 1):
            raise ValueError(f'BEiTv2 with a neck needs backbone out_type="raw" and '
                             f'out_indices=(l - 1, {bb.num_layers - 1}) with l < {bb.num_layers}; '
                             f'got out_type={bb.out_type!r}, out_indices={bb.out_indices}')

    def loss(self, inputs: list[Tensor], data_samples: list[BaseDataElement]) -> dict[str, Tensor]:
        """MIM loss of the final layer plus, with a neck, that of the aggregation branch."""
        if self.neck is None:
            return super().loss(inputs, data_samples)
        img_vit, img_tok = inputs
        mask = self.stack_masks(data_samples, img_vit.device)           # [B, h, w]
        grid = tuple(mask.shape[-2:])
        target = self.target_generator(img_tok, patch_grid=grid)        # [B, N] int64
        early, final = self.backbone(img_vit, mask)                     # 2 x [B, 1+N, D]
        bb = self.backbone
        losses = self.head.loss(final, target, mask.flatten(1))
        shared_bias = bb.rel_pos_bias(grid) if bb.rel_pos_bias is not None else None
        agg = self.neck(early, final, grid, shared_bias)
        agg_losses = self.head.loss(agg, target, mask.flatten(1))
        losses['loss_cls_pt'] = agg_losses['loss']
        losses['mlm_acc_cls_pt'] = agg_losses['mlm_acc']
        return losses
