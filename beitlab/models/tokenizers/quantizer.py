"""Nearest-neighbour vector quantizer of the dVAE (BEiT Sec. 2.1.2; VQ-VAE, van den Oord et al., 2017).

``z_q = c_k, k = argmin_j ||z_e - c_j||_2`` over a codebook held in ``nn.Embedding``;
loss terms ``||sg[z_e] - z_q||^2`` (codebook) and ``beta * ||z_e - sg[z_q]||^2``
(commitment); the decoder's gradient reaches the encoder straight through
(``z_e + sg[z_q - z_e]``).
"""
from typing import NamedTuple, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['QuantizerOutput', 'VectorQuantizer', 'code_perplexity']


class QuantizerOutput(NamedTuple):
    """What :class:`VectorQuantizer` returns."""

    z_q: torch.Tensor  # [B, D, H, W], straight-through: forward value z_q, gradient to z_e
    indices: torch.Tensor  # [B, H, W] int64
    loss_codebook: torch.Tensor  # ||sg[z_e] - z_q||^2 (zero with EMA updates)
    loss_commitment: torch.Tensor  # beta * ||z_e - sg[z_q]||^2
    usage: torch.Tensor  # fraction of the codebook used in this batch
    perplexity: torch.Tensor  # exp(entropy of this batch's code histogram)


def code_perplexity(counts: torch.Tensor) -> torch.Tensor:
    """``exp(-sum p log p)`` of a code histogram ``counts: [K]``; K means uniform use."""
    probs = counts.float() / counts.sum().clamp(min=1)
    return torch.exp(-(probs * torch.log(probs.clamp(min=1e-10))).sum())


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


class VectorQuantizer(nn.Module):
    """Quantize ``z_e: [B, D, H, W]`` to its nearest codebook vectors.

    Args:
        num_embeddings: codebook size K (the vocabulary).
        embedding_dim: code dimension D.
        beta: commitment weight.
        ema_decay: if set (e.g. 0.99), the codebook follows an exponential moving average of
            the encoder outputs assigned to each code instead of the codebook loss; the
            codebook then gets no gradient. How, is ``ema_rule``.
        ema_rule: ``'running_sum'`` (VQ-VAE, App. A.1): running sums of the assigned vectors
            and of the cluster sizes (Laplace-smoothed), the code is their ratio.
            ``'norm_ema'`` (BEiT v2's VQ-KD, official ``beit2/norm_ema_quantizer.py``): each
            code used in the step becomes ``l2norm(decay * code + (1 - decay) *
            l2norm(mean of its assigned vectors))``; unused codes stay as they are; needs
            ``l2_normalize``.
        restart_unused_after: if set, a code unused for that many training steps is
            re-seeded with a random encoder output of the current batch (dead-code restart).
        l2_normalize: compare and quantize l2-normalised vectors (cosine nearest neighbour).
        ema_eps: Laplace smoothing of the EMA cluster sizes.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, beta: float = 0.25,
                 ema_decay: Optional[float] = None, restart_unused_after: Optional[int] = None,
                 l2_normalize: bool = False, ema_eps: float = 1e-5,
                 ema_rule: str = 'running_sum') -> None:
        super().__init__()
        if ema_rule not in ('running_sum', 'norm_ema'):
            raise ValueError(f"VectorQuantizer ema_rule {ema_rule!r}: expected 'running_sum' "
                             f"or 'norm_ema'")
        if ema_rule == 'norm_ema' and not l2_normalize:
            raise ValueError("VectorQuantizer ema_rule='norm_ema' keeps unit-length codes and "
                             "needs l2_normalize=True")
        self.ema_rule = ema_rule
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.beta = beta
        self.ema_decay = ema_decay
        self.restart_unused_after = restart_unused_after
        self.l2_normalize = l2_normalize
        self.ema_eps = ema_eps
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / num_embeddings, 1.0 / num_embeddings)
        if l2_normalize:
            nn.init.normal_(self.embedding.weight)
            self._normalize_codebook()
        # steps since each code was last chosen (training only)
        self.register_buffer('steps_unused', torch.zeros(num_embeddings, dtype=torch.long))
        if ema_decay is not None:
            self.embedding.weight.requires_grad_(False)
            # the running code usage (a statistic under 'norm_ema', as official)
            self.register_buffer('ema_cluster_size', torch.zeros(num_embeddings))
            if ema_rule == 'running_sum':
                self.register_buffer('ema_embed_sum', self.embedding.weight.detach().clone())

    @torch.no_grad()
    def _normalize_codebook(self) -> None:
        self.embedding.weight.data.copy_(F.normalize(self.embedding.weight.data, dim=1))

    def codebook(self) -> torch.Tensor:
        """``[K, D]`` code vectors as used for the nearest-neighbour search."""
        weight = self.embedding.weight
        return F.normalize(weight, dim=1) if self.l2_normalize else weight

    def nearest_codes(self, flat: torch.Tensor) -> torch.Tensor:
        """Indices ``[M]`` of the nearest codes to ``flat: [M, D]`` (float32 distances)."""
        flat = flat.float()
        codes = self.codebook().float()
        # ||z||^2 - 2 z.c + ||c||^2, without materialising the [M, K, D] differences
        dist_sq = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codes.t()
                   + codes.pow(2).sum(1)[None, :])
        return dist_sq.argmin(dim=1)

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """``indices: [B, H, W]`` -> code vectors ``[B, D, H, W]``."""
        return F.embedding(indices, self.codebook()).permute(0, 3, 1, 2).contiguous()

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        B, D, H, W = z_e.shape
        if D != self.embedding_dim:
            raise ValueError(f'encoder output has {D} channels, the codebook {self.embedding_dim}')
        z_e = z_e.float()
        if self.l2_normalize:
            z_e = F.normalize(z_e, dim=1)
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, D)  # [B*H*W, D]
        indices = self.nearest_codes(flat.detach())
        z_q = F.embedding(indices, self.codebook()).view(B, H, W, D).permute(0, 3, 1, 2)

        if self.ema_decay is None:
            loss_codebook = F.mse_loss(z_q, z_e.detach())
        else:
            loss_codebook = z_e.new_zeros(())
        loss_commitment = self.beta * F.mse_loss(z_e, z_q.detach())

        counts = torch.bincount(indices, minlength=self.num_embeddings)
        if self.training:
            counts_all = _all_reduce_sum(counts.clone())
            if self.ema_decay is not None and self.ema_rule == 'norm_ema':
                self._norm_ema_update(flat.detach(), indices, counts_all)
            elif self.ema_decay is not None:
                self._ema_update(flat.detach(), indices, counts_all)
            if self.restart_unused_after is not None:
                self._restart_dead_codes(flat.detach(), counts_all)
        usage = (counts > 0).float().mean()
        perplexity = code_perplexity(counts)

        z_q_st = z_e + (z_q - z_e).detach()  # straight-through estimator
        return QuantizerOutput(z_q_st, indices.view(B, H, W), loss_codebook, loss_commitment,
                               usage, perplexity)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor,
                    counts_all: torch.Tensor) -> None:
        decay = self.ema_decay
        embed_sum = torch.zeros_like(self.ema_embed_sum).index_add_(0, indices, flat)
        _all_reduce_sum(embed_sum)
        self.ema_cluster_size.mul_(decay).add_(counts_all.float(), alpha=1 - decay)
        self.ema_embed_sum.mul_(decay).add_(embed_sum, alpha=1 - decay)
        n = self.ema_cluster_size.sum()
        size = (self.ema_cluster_size + self.ema_eps) / (n + self.num_embeddings * self.ema_eps) * n
        # .data: the autograd graph of this step may still hold the old weight
        self.embedding.weight.data.copy_(self.ema_embed_sum / size[:, None])
        if self.l2_normalize:
            self._normalize_codebook()

    @torch.no_grad()
    def _norm_ema_update(self, flat: torch.Tensor, indices: torch.Tensor,
                         counts_all: torch.Tensor) -> None:
        """BEiT v2's rule: ``flat: [M, D]`` unit vectors, ``counts_all: [K]`` over all ranks."""
        decay = self.ema_decay
        embed_sum = torch.zeros_like(self.embedding.weight).index_add_(0, indices, flat)
        _all_reduce_sum(embed_sum)
        self.ema_cluster_size.mul_(decay).add_(counts_all.float(), alpha=1 - decay)
        used = counts_all > 0
        means = F.normalize(embed_sum[used] / counts_all[used, None].to(embed_sum.dtype), dim=1)
        weight = self.embedding.weight.data
        weight[used] = F.normalize(decay * weight[used] + (1 - decay) * means, dim=1)

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor, counts_all: torch.Tensor) -> None:
        self.steps_unused.add_(1).masked_fill_(counts_all > 0, 0)
        dead = (self.steps_unused >= self.restart_unused_after).nonzero().flatten()
        if dead.numel() == 0:
            return
        picks = torch.randint(0, flat.shape[0], (dead.numel(),), device=flat.device)
        new_codes = flat[picks]
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(new_codes, src=0)  # every rank re-seeds with the same vectors
        self.embedding.weight.data[dead] = new_codes.to(self.embedding.weight.dtype)
        self.steps_unused[dead] = 0
        if self.ema_decay is not None:
            self.ema_cluster_size[dead] = 1.0
        if self.ema_decay is not None and self.ema_rule == 'running_sum':
            self.ema_embed_sum[dead] = new_codes

    def extra_repr(self) -> str:
        return (f'num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}, '
                f'beta={self.beta}, ema_decay={self.ema_decay}, ema_rule={self.ema_rule!r}, '
                f'restart_unused_after={self.restart_unused_after}, '
                f'l2_normalize={self.l2_normalize}')
