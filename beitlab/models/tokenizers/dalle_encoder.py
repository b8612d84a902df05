"""DALL-E-compatible tokenizer: the architecture of OpenAI's released dVAE encoder.

The official BEiT (Sec. 2.1.2 of the BEiT paper) took its visual
tokens from the DALL-E dVAE: the 112 px tokenizer view, scaled by ``map_pixels``, goes through
the encoder and each position's token is the argmax of its 8192 logits (14 x 14 tokens).
Converted weights (``tools/model_converters/dalle_to_beitlab.py``) give the same ids.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from beitlab.registry import TOKENIZERS

from .base import BaseTokenizer

__all__ = ['DALLEEncoder', 'map_pixels']

LOGIT_LAPLACE_EPS = 0.1


def map_pixels(x: torch.Tensor, eps: float = LOGIT_LAPLACE_EPS) -> torch.Tensor:
    """Squeeze pixels from [0, 1] into [eps, 1 - eps], DALL-E's logit-Laplace input range."""
    return (1 - 2 * eps) * x + eps


class EncoderBlock(nn.Module):
    """``shortcut(x) + post_gain * conv4(relu(conv3(relu(conv2(relu(conv1(relu(x))))))))``.

    3x3, 3x3, 3x3, 1x1 convs with ``out_channels // 4`` hidden channels; ``post_gain`` is
    ``1 / num_layers ** 2`` over the whole encoder's residual blocks.
    """

    def __init__(self, in_channels: int, out_channels: int, num_layers: int) -> None:
        super().__init__()
        hidden = out_channels // 4
        self.post_gain = 1 / num_layers ** 2
        self.shortcut = (nn.Conv2d(in_channels, out_channels, 1)
                         if in_channels != out_channels else nn.Identity())
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv3 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv4 = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(x))
        h = self.conv2(F.relu(h))
        h = self.conv3(F.relu(h))
        h = self.conv4(F.relu(h))
        return self.shortcut(x) + self.post_gain * h


@TOKENIZERS.register_module()
class DALLEEncoder(BaseTokenizer):
    """DALL-E dVAE encoder as a frozen tokenizer: ``img [B, 3, 112, 112] in [0, 1] ->
    tokens [B, 14, 14]``.

    A 7x7 stem, ``group_count`` stages of ``blocks_per_group`` residual blocks with widths
    ``hidden_channels * (1, 2, 4, 8)`` and a 2x2 max-pool after every stage but the last
    (downsample ``2 ** (group_count - 1)`` = 8), then ReLU and a 1x1 conv to
    ``vocab_size`` logits.

    Args:
        vocab_size: logits per position (8192 for the released weights).
        hidden_channels: ``n_hid`` of the reference (256).
        group_count: number of stages (4).
        blocks_per_group: residual blocks per stage (``n_blk_per_group``, 2).
        in_channels: image channels (3).
        checkpoint, frozen, bf16, init_cfg: see :class:`BaseTokenizer`; a checkpoint in
            beitlab's names (convert the dall_e package's state dict first).
    """

    def __init__(self, vocab_size: int = 8192, hidden_channels: int = 256,
                 group_count: int = 4, blocks_per_group: int = 2, in_channels: int = 3,
                 checkpoint: Optional[str] = None, frozen: Optional[bool] = None,
                 bf16: bool = False, init_cfg: Optional[dict] = None) -> None:
        super().__init__(vocab_size, 2 ** (group_count - 1), checkpoint, frozen, bf16, init_cfg)
        self.in_channels = in_channels
        num_layers = group_count * blocks_per_group
        self.stem = nn.Conv2d(in_channels, hidden_channels, 7, padding=3)
        stages = []
        in_ch = hidden_channels
        for g in range(group_count):
            out_ch = hidden_channels * 2 ** g
            stages.append(nn.Sequential(*[
                EncoderBlock(in_ch if b == 0 else out_ch, out_ch, num_layers)
                for b in range(blocks_per_group)]))
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv2d(in_ch, vocab_size, 1)
        self._finish_init()

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """``img [B, 3, h, w] in [0, 1] -> logits [B, vocab_size, h/8, w/8]`` (float32)."""
        if img.shape[1] != self.in_channels or img.shape[-1] % self.downsample or \
                img.shape[-2] % self.downsample:
            raise ValueError(f'DALLEEncoder expects [B, {self.in_channels}, h, w] with h, w '
                             f'multiples of {self.downsample}; got {tuple(img.shape)}')
        with self.autocast(img):
            x = self.stem(map_pixels(img.float()))
            for i, stage in enumerate(self.stages):
                x = stage(x)
                if i < len(self.stages) - 1:
                    x = F.max_pool2d(x, kernel_size=2)
            return self.head(F.relu(x)).float()

    def _get_tokens(self, img: torch.Tensor) -> torch.Tensor:
        return self(img).argmax(dim=1)
