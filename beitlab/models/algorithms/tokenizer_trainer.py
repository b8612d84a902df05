"""Train a visual tokenizer (the dVAE of BEiT Sec. 2.1.2) with the Runner."""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.structures import BaseDataElement

from beitlab.registry import MODELS, TOKENIZERS

from .base import BaseAlgorithm, build_part

__all__ = ['TokenizerTrainer']


@MODELS.register_module()
class TokenizerTrainer(BaseAlgorithm):
    """Wraps any trainable tokenizer (one with ``loss(img)`` and ``forward(img)``).

    Inputs reach the tokenizer as ``[B, C, h, w]`` float in [0, 1] (RGB); use a data
    preprocessor such as ``dict(type='ImgDataPreprocessor', mean=[0, 0, 0],
    std=[255, 255, 255], bgr_to_rgb=True)``.

    - mode 'loss': the tokenizer's loss dict (reconstruction, codebook, commitment terms
      plus ``mse``, ``psnr``, ``usage``, ``perplexity`` for logging);
    - mode 'predict': one ``BaseDataElement`` per image with ``gt_img`` and ``pred_img``
      ([C, h, w] in [0, 1]) and ``tokens`` ([h/d, w/d] int64) for the reconstruction metric;
    - mode 'tensor': the tokens ``[B, h/d, w/d]``.

    Args:
        tokenizer: a TOKENIZERS config dict or a built module.
        data_preprocessor: mmengine data preprocessor config.
        init_cfg: mmengine init config.
    """

    default_data_preprocessor = dict(type='ImgDataPreprocessor', mean=[0., 0., 0.],
                                     std=[255., 255., 255.], bgr_to_rgb=True)

    def __init__(self, tokenizer: Union[dict, nn.Module],
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.tokenizer = build_part(tokenizer, TOKENIZERS)
        if not hasattr(self.tokenizer, 'loss'):
            raise TypeError(f'{type(self.tokenizer).__name__} has no loss(img): it cannot be '
                            'trained by TokenizerTrainer')

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def forward_tensor(self, inputs: torch.Tensor,
                       data_samples: Optional[List] = None) -> torch.Tensor:
        """The tokens ``[B, h/d, w/d]`` int64."""
        return self.tokenizer.get_tokens(inputs)

    def loss(self, inputs: torch.Tensor,
             data_samples: Optional[List] = None) -> Dict[str, torch.Tensor]:
        """The tokenizer's loss dict."""
        return self.tokenizer.loss(inputs)

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List] = None) -> List[BaseDataElement]:
        out = self.tokenizer(inputs)
        recon = out['recon'].clamp(0, 1)
        results = []
        for i in range(inputs.shape[0]):
            sample = data_samples[i] if data_samples is not None else BaseDataElement()
            sample.set_field(inputs[i], 'gt_img')
            sample.set_field(recon[i], 'pred_img')
            sample.set_field(out['tokens'][i], 'tokens')
            results.append(sample)
        return results
