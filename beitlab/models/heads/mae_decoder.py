"""MAE's light decoder (He et al., CVPR 2022, Sec. 3 "MAE decoder").

The encoded visible tokens are projected to the decoder width, shared learnable
mask tokens are put back at the removed positions (un-shuffled with
``ids_restore``), fixed 2D sin-cos position embeddings are added, a few
Transformer blocks run, and a linear layer predicts the P*P*C pixels of every
patch. The loss is the MSE on the masked patches only (Sec. 3 "Reconstruction
target").
"""
from typing import Dict, Set, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from beitlab.models.backbones.beit_layers import BEiTBlock
from beitlab.registry import MODELS

__all__ = ['MAEDecoder', 'sincos_pos_embed_2d']


def sincos_pos_embed_2d(grid: Tuple[int, int], dims: int, cls_token: bool = True) -> Tensor:
    """Fixed 2D sin-cos embedding ``[1, (1)+h*w, dims]`` (half the channels per axis;
    the CLS position is zeros), as in MAE's ``get_2d_sincos_pos_embed``."""
    if dims % 4:
        raise ValueError(f'sincos_pos_embed_2d: dims={dims} must be a multiple of 4')
    h, w = grid
    gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing='ij')
    omega = 1.0 / 10000 ** (torch.arange(dims // 4, dtype=torch.float64) / (dims / 4.0))

    def _1d(pos: Tensor) -> Tensor:
        out = pos.reshape(-1, 1) * omega[None]  # [h*w, dims/4]
        return torch.cat([out.sin(), out.cos()], dim=1)

    emb = torch.cat([_1d(gx), _1d(gy)], dim=1).float()  # [h*w, dims]
    if cls_token:
        emb = torch.cat([torch.zeros(1, dims), emb], dim=0)
    return emb.unsqueeze(0)


@MODELS.register_module()
class MAEDecoder(BaseModule):
    """Light MAE decoder with mask tokens and a pixel prediction layer.

    Args:
        grid: encoder patch grid ``(H/P, W/P)`` (or an int).
        patch_size: P.
        in_channels: image channels C (the prediction has P*P*C values per patch).
        embed_dims: encoder width D.
        decoder_embed_dims: decoder width (512 in the paper).
        decoder_depth: decoder blocks (8 in the paper).
        decoder_num_heads: decoder heads (16 in the paper).
        mlp_ratio: FFN width / decoder width.
        num_extra_tokens: CLS tokens in the encoder output (1, or 0 without CLS).
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 grid: Tuple[int, int] = (14, 14),
                 patch_size: int = 16,
                 in_channels: int = 3,
                 embed_dims: int = 768,
                 decoder_embed_dims: int = 512,
                 decoder_depth: int = 8,
                 decoder_num_heads: int = 16,
                 mlp_ratio: float = 4.0,
                 num_extra_tokens: int = 1,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.grid = (grid, grid) if isinstance(grid, int) else tuple(grid)
        self.num_patches = self.grid[0] * self.grid[1]
        self.patch_size = patch_size
        self.num_extra_tokens = num_extra_tokens
        self.decoder_embed = nn.Linear(embed_dims, decoder_embed_dims)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dims))
        self.register_buffer(
            'decoder_pos_embed',
            sincos_pos_embed_2d(self.grid, decoder_embed_dims, cls_token=num_extra_tokens > 0),
            persistent=False)
        self.decoder_blocks = nn.ModuleList([
            BEiTBlock(decoder_embed_dims, decoder_num_heads,
                      int(decoder_embed_dims * mlp_ratio)) for _ in range(decoder_depth)
        ])
        self.decoder_norm = nn.LayerNorm(decoder_embed_dims, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dims, patch_size ** 2 * in_channels)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def no_weight_decay(self) -> Set[str]:
        """``mask_token``: no weight decay, as the backbone's (1-D parameters and biases are
        exempt by the optimizer constructor's rule)."""
        return {'mask_token'}

    def forward(self, latent: Tensor, ids_restore: Tensor) -> Tensor:
        """latent: [B, E + N_vis, D], ids_restore: [B, N] -> pred [B, N, P*P*C]."""
        E = self.num_extra_tokens
        x = self.decoder_embed(latent)
        B, T, Dd = x.shape
        N = ids_restore.shape[1]
        if N != self.num_patches:
            raise ValueError(f'MAEDecoder: ids_restore covers {N} patches, the decoder was '
                             f'built for grid {self.grid} ({self.num_patches} patches)')
        mask_tokens = self.mask_token.expand(B, N - (T - E), -1)
        x_ = torch.cat([x[:, E:], mask_tokens], dim=1)  # [visible; masked] in shuffled order
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, Dd))  # patch order
        x = torch.cat([x[:, :E], x_], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x, self.grid)
        x = self.decoder_norm(x)
        return self.decoder_pred(x[:, E:])

    def loss(self, feats: Tensor, target: Tensor, mask: Tensor,
             ids_restore: Tensor) -> Dict[str, Tensor]:
        """MSE on masked patches only: :meth:`reconstruction_loss` of ``forward(feats, ids_restore)``.

        Args:
            feats: encoder output ``[B, E + N_vis, D]`` (the visible patches only).
            target: ``[B, N, P*P*C]`` (normalised pixels).
            mask: ``[B, N]`` bool, True = masked (the only patches in the loss).
            ids_restore: ``[B, N]`` from ``MAE.random_masking``.
        """
        return self.reconstruction_loss(self.forward(feats, ids_restore), target, mask)

    @staticmethod
    def reconstruction_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Dict[str, Tensor]:
        """MSE per patch averaged over the masked patches (MAE Sec. 3, "Reconstruction target").

        Args:
            pred: decoder prediction ``[B, N, P*P*C]``.
            target: ``[B, N, P*P*C]``.
            mask: ``[B, N]`` (or ``[B, h, w]``) bool, True = masked.
        """
        if pred.shape != target.shape:
            raise ValueError(f'MAEDecoder: prediction {tuple(pred.shape)} and target '
                             f'{tuple(target.shape)} differ (check patch_size / in_channels)')
        per_patch = ((pred - target) ** 2).mean(dim=-1)  # [B, N]
        m = mask.flatten(1).to(per_patch.dtype)
        return dict(loss=(per_patch * m).sum() / m.sum().clamp(min=1))
