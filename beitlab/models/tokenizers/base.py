"""Common behaviour of visual tokenizers: checkpoint loading, freezing, the grid check."""
import contextlib
from typing import Optional, Sequence

import torch
from mmengine.model import BaseModule

from .utils import check_token_grid, load_tokenizer_state_dict

__all__ = ['BaseTokenizer']


class BaseTokenizer(BaseModule):
    """Base of every tokenizer: ``img [B, 3, h, w] in [0, 1] -> tokens [B, h/d, w/d] int64``.

    A tokenizer given a ``checkpoint`` is frozen by default (Sec. II.B.4 of the method spec:
    "the dVAE is trained once and then frozen"): its weights are loaded with
    ``torch.load(weights_only=True)``, it stays in eval mode whatever ``train()`` is called
    with, no parameter requires grad, and ``get_tokens`` runs under ``torch.no_grad``. It is
    called inside the model's forward, so it runs on the training device.

    Args:
        vocab_size: number of codes.
        downsample: input pixels per token along each side.
        checkpoint: weights to load (a state dict, optionally under ``state_dict``).
        frozen: freeze; defaults to ``checkpoint is not None``.
        bf16: run the network under bf16 autocast when frozen (the code choice itself is
            computed in float32).
        init_cfg: mmengine init config.
    """

    def __init__(self, vocab_size: int, downsample: int, checkpoint: Optional[str] = None,
                 frozen: Optional[bool] = None, bf16: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.vocab_size = int(vocab_size)
        self.downsample = int(downsample)
        self.checkpoint = checkpoint
        self.frozen = checkpoint is not None if frozen is None else frozen
        self.bf16 = bf16

    def _finish_init(self) -> None:
        """Subclasses call this at the end of ``__init__``: load weights, then freeze."""
        if self.checkpoint is not None:
            state_dict = load_tokenizer_state_dict(self.checkpoint)
            own = self.state_dict()
            bad = {k: (tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items()
                   if k in own and v.shape != own[k].shape}
            if bad:
                raise ValueError(
                    f'tokenizer checkpoint {self.checkpoint!r} does not fit this '
                    f'{type(self).__name__} (vocab_size={self.vocab_size}); '
                    f'(checkpoint shape, model shape) per key: {bad}')
            missing, unexpected = self.load_state_dict(state_dict, strict=False)
            if missing or unexpected:
                raise KeyError(f'tokenizer checkpoint {self.checkpoint!r}: missing keys '
                               f'{missing}, unexpected keys {unexpected}')
            self._is_init = True  # weights come from the checkpoint, not init_cfg
        if self.frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> 'BaseTokenizer':
        return super().train(mode and not self.frozen)

    def init_weights(self) -> None:
        if self.checkpoint is None:
            super().init_weights()

    def autocast(self, img: torch.Tensor):
        """bf16 autocast on the input's device when frozen and ``bf16`` is set."""
        if self.frozen and self.bf16:
            return torch.autocast(device_type=img.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _get_tokens(self, img: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_tokens(self, img: torch.Tensor,
                   expected_grid: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Visual tokens of ``img: [B, 3, h, w]`` float in [0, 1] (RGB).

        Returns ``[B, h/downsample, w/downsample]`` int64. ``expected_grid`` (the ViT patch
        grid) is checked against the token grid; a mismatch raises ``ValueError``.
        """
        if img.dim() != 4:
            raise ValueError(f'{type(self).__name__}.get_tokens expects [B, C, h, w], '
                             f'got shape {tuple(img.shape)}')
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            tokens = self._get_tokens(img)
        if expected_grid is not None:
            check_token_grid(tokens.shape[-2:], expected_grid)
        return tokens.long()

    def extra_repr(self) -> str:
        return f'vocab_size={self.vocab_size}, downsample={self.downsample}, frozen={self.frozen}'


