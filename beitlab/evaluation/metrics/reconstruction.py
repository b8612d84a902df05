"""Reconstruction quality and codebook statistics of a visual tokenizer."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from beitlab.registry import METRICS

__all__ = ['ReconstructionMetric']


@METRICS.register_module()
class ReconstructionMetric(BaseMetric):
    """MSE, PSNR, codebook usage and perplexity over a whole evaluation set.

    Reads ``gt_img`` / ``pred_img`` ([C, h, w] in [0, 1]) and ``tokens`` from each data
    sample (``TokenizerTrainer`` in 'predict' mode).

    - ``mse``: mean squared pixel error over every pixel of the set (0-1 scale);
    - ``psnr``: mean over images of ``10 log10(1 / mse_image)`` (dB);
    - ``usage``: fraction of the ``vocab_size`` codes used at least once on the set;
    - ``perplexity``: ``exp`` of the entropy of the set's code histogram (``vocab_size``
      means every code equally often).

    Args:
        vocab_size: codebook size.
        collect_device, prefix: see mmengine ``BaseMetric``.
    """

    default_prefix = 'recon'

    def __init__(self, vocab_size: int, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.vocab_size = vocab_size

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            get = sample.get if isinstance(sample, dict) else \
                (lambda key, s=sample: getattr(s, key))
            gt, pred = get('gt_img').float(), get('pred_img').float()
            if gt.shape != pred.shape:
                raise ValueError(f'gt_img {tuple(gt.shape)} and pred_img {tuple(pred.shape)} '
                                 'differ in shape')
            tokens = get('tokens').flatten().cpu()
            if tokens.numel() and int(tokens.max()) >= self.vocab_size:
                raise ValueError(f'token id {int(tokens.max())} is out of range for '
                                 f'vocab_size={self.vocab_size}')
            sq_err = (pred - gt).pow(2).sum().item()
            self.results.append(dict(sq_err=sq_err, numel=gt.numel(),
                                     counts=torch.bincount(tokens, minlength=self.vocab_size)))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        sq_err = torch.tensor([r['sq_err'] for r in results], dtype=torch.float64)
        numel = torch.tensor([r['numel'] for r in results], dtype=torch.float64)
        mse_img = sq_err / numel
        counts = torch.stack([r['counts'] for r in results]).sum(0).double()
        probs = counts / counts.sum()
        entropy = -(probs[probs > 0] * probs[probs > 0].log()).sum()
        return dict(mse=float(sq_err.sum() / numel.sum()),
                    psnr=float((10 * torch.log10(1 / mse_img.clamp(min=1e-10))).mean()),
                    usage=float((counts > 0).double().mean()),
                    perplexity=float(entropy.exp()))
