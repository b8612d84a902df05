"""The backbone's paths over a subset of its tokens, part of :class:`BEiTViT` (mixed in):
the masked-only last layer of masked image modeling and the visible-only MAE encoder."""
import torch
from torch import Tensor

__all__ = ['TokenSubsetPaths']


class TokenSubsetPaths:
    """``forward_masked`` and ``forward_visible`` of :class:`~.beit_vit.BEiTViT`; they use its
    embedding, blocks and norm and are tested through it."""

    def forward_masked(self, x: Tensor, mask: Tensor) -> Tensor:
        """Tokens of the masked patches only, after the last layer and the final norm:
        ``[M, D]`` in the order of ``forward_features(x, mask)[:, 1:][mask]`` (batch-major,
        then row-major), equal to it up to rounding.

        Masked image modeling reads nothing else from the last layer, so there its
        queries, output projection and FFN run on the masked patches only (keys and
        values on all tokens); the earlier layers run as usual. With ViT-B/16 and 75 of
        196 patches masked that is about half of the last layer's arithmetic.
        """
        b = x.shape[0]
        if self.window_size > 0 or self.norm is None:
            tokens = self.forward_features(x, mask)[:, self.num_extra_tokens:]
            grid = (x.shape[2] // self.patch_size, x.shape[3] // self.patch_size)
            return tokens[self._check_mask(mask, b, grid)]
        tokens, grid = self.embed(x, mask)
        mask = self._check_mask(mask, b, grid)
        shared_bias = self.rel_pos_bias(grid) if self.rel_pos_bias is not None else None
        for block in self.blocks[:-1]:
            tokens = block(tokens, grid, shared_bias)
        counts = mask.sum(1)
        # Masked positions first, each row in ascending (row-major) order; rows with fewer
        # masked patches than the most masked one are padded with unmasked positions.
        order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices
        order = order[:, :int(counts.max())]
        valid = torch.arange(order.shape[1], device=mask.device) < counts.unsqueeze(1)
        tokens = self.blocks[-1](tokens, grid, shared_bias,
                                 query_index=order + self.num_extra_tokens)
        return self.norm(tokens)[valid]

    def check_forward_visible(self) -> None:
        """Raise ``ValueError`` when :meth:`forward_visible` cannot run on this backbone: per-layer
        relative position tables (``use_rel_pos_bias``) and windowed attention need the full
        patch grid."""
        if any(b.attn.relative_position_bias_table is not None for b in self.blocks):
            raise ValueError('BEiTViT.forward_visible: a backbone with use_rel_pos_bias=True (one '
                             'bias table per layer) cannot run on a subset of tokens; use '
                             'use_abs_pos_emb and/or use_shared_rel_pos_bias')
        if self.window_size > 0:
            raise ValueError(f'BEiTViT.forward_visible: window_size={self.window_size} needs the '
                             'full patch grid; build the backbone with window_size=0')

    def forward_visible(self, x: Tensor, ids_keep: Tensor) -> Tensor:
        """Encode the visible patches only (the MAE encoder, He et al. 2022 Sec. 3).

        Patches are embedded and given their absolute position embedding, the visible ones
        are gathered, the CLS token (with its position) is prepended, and every layer and
        the final norm run on that shorter sequence; a shared relative position bias is
        gathered to the same positions. ``mask_token`` is not used.

        Args:
            x: ``[B, C, H, W]`` (the grid of ``img_size`` with an absolute position embedding).
            ids_keep: ``[B, N_vis]`` int64 row-major indices of the visible patches; the output
                keeps their order.
        Returns:
            ``[B, E + N_vis, D]`` (E = ``num_extra_tokens``), after the final norm (if any).
        """
        self.check_forward_visible()
        b = x.shape[0]
        if ids_keep.dim() != 2 or ids_keep.shape[0] != b:
            raise ValueError(f'ids_keep of shape {tuple(ids_keep.shape)}: expected [B, N_vis] '
                             f'with B = {b}')
        grid = self._input_grid(x)
        E = self.num_extra_tokens
        tokens = self.patch_embed(x)  # [B, N, D]
        if self.pos_embed is not None:
            tokens = tokens + self.pos_embed[:, E:]
        tokens = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        if self.cls_token is not None:
            cls = self.cls_token if self.pos_embed is None else self.cls_token + self.pos_embed[:, :1]
            tokens = torch.cat([cls.expand(b, -1, -1), tokens], dim=1)
        tokens = self.pos_drop(tokens)
        bias = None
        if self.rel_pos_bias is not None:
            full = self.rel_pos_bias(grid)  # [heads, 1+N, 1+N] (CLS first)
            idx = ids_keep + 1
            if E:
                idx = torch.cat([idx.new_zeros(b, 1), idx], dim=1)  # [B, T]
            bias = full[:, idx[:, :, None], idx[:, None, :]].transpose(0, 1)  # [B, heads, T, T]
        for block in self.blocks:
            tokens = block(tokens, grid, bias)
        if self.norm is not None:
            tokens = self.norm(tokens)
        return tokens
