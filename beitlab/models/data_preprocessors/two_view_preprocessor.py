"""Normalise the two views of BEiT pre-training, each for its consumer (Sec. 2.5)."""
from typing import Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor

from beitlab.registry import MODELS

__all__ = ['TwoViewDataPreprocessor']


@MODELS.register_module()
class TwoViewDataPreprocessor(BaseDataPreprocessor):
    """Stack ``inputs = [img_vit, img_tok]`` and normalise each view for its consumer.

    The ViT view gets ``(x - mean) / std`` (ImageNet statistics on 0..255 by default, as
    official BEiT with ``--imagenet_default_mean_and_std``); the tokenizer view gets
    ``(x - tok_mean) / tok_std``, by default ``x / 255`` in [0, 1], which is what
    beitlab tokenizers take (the DALL-E tokenizer applies its own ``map_pixels``).

    Args:
        mean, std: ViT-view statistics per channel (after ``to_rgb``).
        tok_mean, tok_std: tokenizer-view statistics per channel.
        to_rgb: flip BGR (mmcv decoding order) to RGB for both views.

    Returns ``dict(inputs=[img_vit [B, 3, H, W] float, img_tok [B, 3, h, w] float],
    data_samples=...)``.
    """

    def __init__(self,
                 mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375),
                 tok_mean: Sequence[float] = (0., 0., 0.),
                 tok_std: Sequence[float] = (255., 255., 255.),
                 to_rgb: bool = True) -> None:
        super().__init__()
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer('tok_mean', torch.tensor(tok_mean, dtype=torch.float32).view(-1, 1, 1),
                             False)
        self.register_buffer('tok_std', torch.tensor(tok_std, dtype=torch.float32).view(-1, 1, 1),
                             False)
        self.to_rgb = to_rgb

    def _stack(self, view: Union[torch.Tensor, Sequence[torch.Tensor]], name: str) -> torch.Tensor:
        batch = view if isinstance(view, torch.Tensor) else torch.stack(list(view))
        if batch.dim() != 4 or batch.shape[1] != 3:
            raise ValueError(f'TwoViewDataPreprocessor: the {name} view must be [B, 3, H, W], '
                             f'got shape {tuple(batch.shape)}')
        batch = batch.float()
        return batch.flip(1) if self.to_rgb else batch

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError('TwoViewDataPreprocessor expects inputs = [img_vit, img_tok] '
                             '(from PackTwoViewInputs), got '
                             f'{type(inputs).__name__} of length {len(inputs)}')
        img_vit = (self._stack(inputs[0], 'ViT') - self.mean) / self.std
        img_tok = (self._stack(inputs[1], 'tokenizer') - self.tok_mean) / self.tok_std
        return dict(inputs=[img_vit, img_tok], data_samples=data.get('data_samples'))
