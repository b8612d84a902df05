"""A trainable dVAE tokenizer (BEiT Sec. 2.1.2, trained VQ-VAE style): conv encoder,
nearest-neighbour quantizer over an ``nn.Embedding`` codebook, deconv decoder, trained with
``||x - D(Q(E(x)))||^2 + ||sg[E(x)] - Q(E(x))||^2 + beta ||E(x) - sg[Q(E(x))]||^2``.
"""
import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from beitlab.registry import TOKENIZERS

from .base import BaseTokenizer
from .quantizer import VectorQuantizer

__all__ = ['DVAE', 'psnr_from_mse']


def psnr_from_mse(mse: torch.Tensor, max_value: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB for images in ``[0, max_value]``."""
    return 10 * torch.log10(max_value ** 2 / mse.clamp(min=1e-10))


class ResBlock(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))`` as in VQ-VAE's encoder and decoder."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def _num_stages(downsample: int) -> int:
    stages = int(round(math.log2(downsample)))
    if downsample < 1 or 2 ** stages != downsample:
        raise ValueError(f'downsample must be a power of two (1, 2, 4, 8, ...), got {downsample}')
    return stages


class Encoder(nn.Sequential):
    """``[B, C, h, w] -> z_e [B, D, h/d, w/d]``: stride-2 4x4 convs, residual blocks, 1x1."""

    def __init__(self, in_channels: int, hidden_channels: int, embed_dim: int,
                 downsample: int, num_res_blocks: int) -> None:
        layers = [nn.Conv2d(in_channels, hidden_channels, 3, padding=1)]
        for _ in range(_num_stages(downsample)):
            layers += [nn.ReLU(), nn.Conv2d(hidden_channels, hidden_channels, 4, 2, 1)]
        layers += [ResBlock(hidden_channels, hidden_channels // 2) for _ in range(num_res_blocks)]
        layers += [nn.ReLU(), nn.Conv2d(hidden_channels, embed_dim, 1)]
        super().__init__(*layers)


class Decoder(nn.Sequential):
    """``z_q [B, D, h/d, w/d] -> [B, C, h, w]``: residual blocks, stride-2 4x4 deconvs."""

    def __init__(self, out_channels: int, hidden_channels: int, embed_dim: int,
                 downsample: int, num_res_blocks: int) -> None:
        layers = [nn.Conv2d(embed_dim, hidden_channels, 3, padding=1)]
        layers += [ResBlock(hidden_channels, hidden_channels // 2) for _ in range(num_res_blocks)]
        for _ in range(_num_stages(downsample)):
            layers += [nn.ReLU(), nn.ConvTranspose2d(hidden_channels, hidden_channels, 4, 2, 1)]
        layers += [nn.ReLU(), nn.Conv2d(hidden_channels, out_channels, 3, padding=1)]
        super().__init__(*layers)


@TOKENIZERS.register_module()
class DVAE(BaseTokenizer):
    """Discrete VAE tokenizer: ``img [B, C, h, w] in [0, 1] -> tokens [B, h/d, w/d]``.

    Args:
        vocab_size: codebook size |V|.
        downsample: d, a power of two (one stride-2 conv per factor 2).
        in_channels: image channels.
        hidden_channels: width of encoder and decoder.
        embed_dim: code dimension D.
        num_res_blocks: residual blocks in the encoder and in the decoder.
        beta: commitment weight.
        quantizer: extra ``VectorQuantizer`` options (``ema_decay``,
            ``restart_unused_after``, ``l2_normalize``).
        checkpoint, frozen, bf16, init_cfg: see :class:`BaseTokenizer`.
    """

    def __init__(self, vocab_size: int = 512, downsample: int = 4, in_channels: int = 3,
                 hidden_channels: int = 64, embed_dim: int = 64, num_res_blocks: int = 1,
                 beta: float = 0.25, quantizer: Optional[dict] = None,
                 checkpoint: Optional[str] = None, frozen: Optional[bool] = None,
                 bf16: bool = False, init_cfg: Optional[dict] = None) -> None:
        super().__init__(vocab_size, downsample, checkpoint, frozen, bf16, init_cfg)
        self.in_channels = in_channels
        self.encoder = Encoder(in_channels, hidden_channels, embed_dim, downsample, num_res_blocks)
        self.quantizer = VectorQuantizer(vocab_size, embed_dim, beta=beta, **(quantizer or {}))
        self.decoder = Decoder(in_channels, hidden_channels, embed_dim, downsample, num_res_blocks)
        self._finish_init()

    def _check_input(self, img: torch.Tensor) -> None:
        h, w = img.shape[-2:]
        if img.shape[1] != self.in_channels or h % self.downsample or w % self.downsample:
            raise ValueError(
                f'DVAE expects [B, {self.in_channels}, h, w] with h, w multiples of '
                f'{self.downsample}; got {tuple(img.shape)}')

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        """``img [B, C, h, w] in [0, 1] -> z_e [B, D, h/d, w/d]``."""
        self._check_input(img)
        with self.autocast(img):
            return self.encoder(img * 2 - 1).float()

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """``z_q [B, D, h/d, w/d] -> reconstruction [B, C, h, w]`` in [0, 1] (unclamped)."""
        return self.decoder(z_q) * 0.5 + 0.5

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [B, h/d, w/d] int64 -> reconstruction [B, C, h, w]``."""
        return self.decode(self.quantizer.embed(tokens))

    def _get_tokens(self, img: torch.Tensor) -> torch.Tensor:
        z_e = self.encode(img)
        if self.quantizer.l2_normalize:
            z_e = F.normalize(z_e, dim=1)
        B, D, H, W = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, D)
        return self.quantizer.nearest_codes(flat).view(B, H, W)

    def forward(self, img: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Encode, quantize, decode: ``recon``, ``tokens`` and the quantizer's terms."""
        out = self.quantizer(self.encode(img))
        return dict(recon=self.decode(out.z_q), tokens=out.indices,
                    loss_codebook=out.loss_codebook, loss_commitment=out.loss_commitment,
                    usage=out.usage, perplexity=out.perplexity)

    def loss(self, img: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Training objective (keys with ``loss`` are summed by mmengine) and statistics.

        ``loss_recon`` is the pixel MSE in [0, 1] units; ``mse`` and ``psnr`` use the
        reconstruction clamped to [0, 1]; ``usage`` and ``perplexity`` describe this batch.
        """
        return self.loss_from_output(self(img), img)

    def loss_from_output(self, out: Dict[str, torch.Tensor],
                         img: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The losses and statistics of :meth:`loss` from an output of ``forward(img)``
        (for subclasses whose objective also reads ``out['recon']``)."""
        recon = out['recon']
        with torch.no_grad():
            mse = F.mse_loss(recon.clamp(0, 1), img)
        return dict(loss_recon=F.mse_loss(recon, img), loss_codebook=out['loss_codebook'],
                    loss_commitment=out['loss_commitment'], mse=mse, psnr=psnr_from_mse(mse),
                    usage=out['usage'], perplexity=out['perplexity'])
