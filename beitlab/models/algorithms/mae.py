"""MAE: masked autoencoder whose encoder sees only the visible patches.

He et al., "Masked Autoencoders Are Scalable Vision Learners" (CVPR 2022), Sec. 3:
random masking at a high ratio (0.75), the encoder runs on the visible 25% of the
tokens only (which is where the ~3x pre-training speed-up comes from), a light
decoder sees encoded visible tokens plus shared mask tokens, and the loss is the
MSE on per-patch normalised pixels of the masked patches only.

The encoder is beitlab's stock ``BEiTViT`` through ``BEiTViT.forward_visible``, which
gathers the visible tokens before the first block (a shared relative position bias is
gathered to them too, so the same backbone config as BEiT pre-training can be compared).
The steps keep the names of the official code (``facebookresearch/mae``,
``models_mae.py``): ``random_masking``, ``forward_encoder``, ``forward_decoder``,
``forward_loss``.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from beitlab.masking.checks import check_mask_count
from beitlab.models.targets.pixels import PixelTarget, patchify, unpatchify
from beitlab.registry import MODELS

from .base import MIMAlgorithm, PartCfg

__all__ = ['MAE', 'prediction_to_pixels']


def prediction_to_pixels(pred: Tensor, img: Tensor, target_generator: nn.Module) -> Tensor:
    """A per-patch pixel prediction as an image in the space of ``img``.

    pred: ``[B, N, P*P*C]`` in the target's space; img: ``[B, C, H, W]`` the encoder's input
    -> ``[B, C, H, W]``. With ``norm_pix`` each patch is un-normalised with the mean and
    variance of the same patch of ``img`` (as the official MAE visualisation does), the
    inverse of :class:`~beitlab.models.targets.pixels.PixelTarget`.
    """
    if not isinstance(target_generator, PixelTarget):
        raise TypeError(f'reconstruct: the target {type(target_generator).__name__} is not '
                        'pixels; only a PixelTarget prediction can be drawn as an image')
    P = target_generator.patch_size
    B, C, H, W = img.shape
    pred = pred.float()
    if target_generator.norm_pix:
        patches = patchify(img.detach().float(), P)  # [B, N, P*P*C]
        mean = patches.mean(dim=-1, keepdim=True)
        var = patches.var(dim=-1, keepdim=True, unbiased=False)
        pred = pred * (var + target_generator.eps).sqrt() + mean
    return unpatchify(pred, P, (H // P, W // P), C)


@MODELS.register_module()
class MAE(MIMAlgorithm):
    """Masked autoencoder pre-training (He et al. 2022).

    Args:
        backbone: BEiTViT config/module; ``use_rel_pos_bias`` (one table per layer) and
            windowed attention are not supported (see ``BEiTViT.check_forward_visible``).
        head: ``MAEDecoder`` config/module.
        target_generator: defaults to ``PixelTarget(norm_pix=True)`` with the
            backbone's patch size.
        mask_ratio: fraction of patches removed per image (0.75, MAE Sec. 4 Fig. 5).
        data_preprocessor, init_cfg: as in mmengine.

    Masks are drawn here (``random_masking``), not taken from the data pipeline,
    so every sample keeps the same number of visible tokens. Modes: ``'loss'`` and
    ``'tensor'`` (tokens of the intact image, ``[B, 1+N, D]``).
    """

    modes = ('loss', 'tensor')  # pre-training only: nothing to predict
    draws_own_mask = True  # the data pipeline's mask is not used in training

    def __init__(self,
                 backbone: PartCfg,
                 head: PartCfg,
                 target_generator: PartCfg = None,
                 mask_ratio: float = 0.75,
                 data_preprocessor: PartCfg = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(backbone, head, target_generator, data_preprocessor, init_cfg)
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f'MAE: mask_ratio={mask_ratio} must lie in (0, 1): 0 masks no '
                             'patch, 1 masks every patch')
        self.mask_ratio = mask_ratio
        grid = self.backbone.grid  # the patch grid of img_size; random_masking keeps this many
        num_patches = int(grid[0]) * int(grid[1])
        check_mask_count('MAE', f'mask_ratio={mask_ratio} (keeps '
                         f'{int(num_patches * (1 - mask_ratio))} visible)',
                         num_patches - int(num_patches * (1 - mask_ratio)), num_patches,
                         f'{grid[0]}x{grid[1]}')
        self.backbone.check_forward_visible()

    def default_target_generator(self) -> dict:
        """Normalised pixels of the backbone's patches (MAE Sec. 3, "Reconstruction target")."""
        return dict(type='PixelTarget', patch_size=self.backbone.patch_size, norm_pix=True)

    def random_masking(self, batch: int, num_patches: int,
                       device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
        """Per-sample random shuffle (MAE ``random_masking``).

        Returns:
            ids_keep: ``[B, N_vis]`` int64 indices of the visible patches.
            mask: ``[B, N]`` bool, True = removed (masked), in patch order.
            ids_restore: ``[B, N]`` int64, un-shuffles ``[visible; masked]`` to patch order.
        """
        num_keep = int(num_patches * (1 - self.mask_ratio))
        noise = torch.rand(batch, num_patches, device=device)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :num_keep]
        mask = torch.ones(batch, num_patches, dtype=torch.bool, device=device)
        mask[:, :num_keep] = False
        mask = torch.gather(mask, 1, ids_restore)
        return ids_keep, mask, ids_restore

    def masking_from(self, mask: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """A given mask ``[B, h, w]`` (or ``[B, N]``) bool, True = masked, with the same
        number of masked patches in every image -> ``(ids_keep, mask [B, N], ids_restore)``
        as :meth:`random_masking` returns them."""
        flat = mask.flatten(1).bool()
        counts = flat.sum(dim=1)
        if not bool((counts == counts[0]).all()):
            raise ValueError(f'MAE: every image must mask the same number of patches, got '
                             f'{counts.tolist()}')
        ids_shuffle = torch.argsort(flat.long(), dim=1, stable=True)  # visible first
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :flat.shape[1] - int(counts[0])]
        return ids_keep, flat, ids_restore

    def masking(self, img: Tensor,
                mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """``(ids_keep [B, N_vis], mask [B, N] bool, ids_restore [B, N])`` for ``img``
        [B, C, H, W]: drawn by :meth:`random_masking` when ``mask`` is None, else from the
        given ``[B, h, w]`` mask (:meth:`masking_from`)."""
        P = self.backbone.patch_size
        num_patches = (img.shape[-2] // P) * (img.shape[-1] // P)
        if mask is None:
            return self.random_masking(img.shape[0], num_patches, img.device)
        if mask.flatten(1).shape != (img.shape[0], num_patches):
            raise ValueError(f'MAE: mask {tuple(mask.shape)} does not cover the '
                             f'{num_patches} patches of image {tuple(img.shape)}')
        return self.masking_from(mask.to(img.device))

    def forward_encoder(self, img: Tensor, ids_keep: Tensor) -> Tensor:
        """img: [B, C, H, W], ids_keep: [B, N_vis] -> latent [B, E + N_vis, D] (E = 1 with
        CLS): the backbone on the visible patches only (``BEiTViT.forward_visible``)."""
        return self.backbone.forward_visible(img, ids_keep)

    def forward_decoder(self, latent: Tensor, ids_restore: Tensor) -> Tensor:
        """latent: [B, E + N_vis, D], ids_restore: [B, N] -> pred [B, N, P*P*C] (the head)."""
        return self.head(latent, ids_restore)

    def forward_loss(self, img: Tensor, pred: Tensor, mask: Tensor) -> Dict[str, Tensor]:
        """MSE of ``pred`` [B, N, P*P*C] against the target of ``img`` [B, C, H, W] on the
        patches of ``mask`` [B, N] bool (True = removed) only -> ``dict(loss)``."""
        target = self.target_generator(img)  # [B, N, P*P*C]
        return self.head.reconstruction_loss(pred, target, mask)

    def loss(self, inputs: Union[Tensor, Sequence[Tensor]],
             data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """MAE loss of ``inputs`` [B, C, H, W] (or two views, the first is used); a
        pipeline mask in ``data_samples`` is ignored (masks are drawn by ``random_masking``)."""
        img = self.image_view(inputs)
        ids_keep, mask, ids_restore = self.masking(img)
        latent = self.forward_encoder(img, ids_keep)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(img, pred, mask)

    def forward_tensor(self, inputs: Union[Tensor, Sequence[Tensor]],
                       data_samples: Optional[list] = None) -> Tensor:
        """Tokens ``[B, 1+N, D]`` of the intact image (feature extraction)."""
        return self.extract_feat(inputs)

    def reconstruct(self, img: Tensor, mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """The decoder's pixels for every patch, as in MAE Fig. 2.

        Args:
            img: ``[B, C, H, W]`` as ``loss`` takes it.
            mask: ``[B, h, w]`` bool (True = masked, the same count per image); None draws
                one with ``random_masking`` as training does.

        Returns:
            ``pred [B, C, H, W]`` in the space of ``img`` (per-patch normalisation undone,
            see :func:`prediction_to_pixels`) and ``mask [B, h, w]`` bool.
        """
        P = self.backbone.patch_size
        ids_keep, mask, ids_restore = self.masking(img, mask)
        pred = self.forward_decoder(self.forward_encoder(img, ids_keep), ids_restore)
        pixels = prediction_to_pixels(pred, img, self.target_generator)
        return pixels, mask.reshape(img.shape[0], img.shape[-2] // P, img.shape[-1] // P)
