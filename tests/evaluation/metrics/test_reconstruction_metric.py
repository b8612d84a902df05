"""ReconstructionMetric against hand-computed values."""
import math

import pytest
import torch
from mmengine.structures import BaseDataElement

from beitlab.evaluation.metrics.reconstruction import ReconstructionMetric


def sample(gt, pred, tokens):
    s = BaseDataElement()
    s.gt_img, s.pred_img, s.tokens = gt, pred, torch.tensor(tokens)
    return s


def test_metric_values_by_hand():
    metric = ReconstructionMetric(vocab_size=4)
    gt = torch.zeros(1, 2, 2)
    a = sample(gt, gt + 0.1, [[0, 0], [1, 1]])  # mse 0.01 -> 20 dB
    b = sample(gt, gt + 0.01, [[0, 0], [0, 0]])  # mse 1e-4 -> 40 dB
    metric.process({}, [a, b])
    out = metric.compute_metrics(metric.results)
    assert out['mse'] == pytest.approx((0.01 + 1e-4) / 2)
    assert out['psnr'] == pytest.approx(30.0, abs=1e-4)
    assert out['usage'] == pytest.approx(0.5)  # codes 0 and 1 of 4
    p = torch.tensor([6 / 8, 2 / 8])
    assert out['perplexity'] == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-6)


def test_out_of_range_token_names_vocab():
    metric = ReconstructionMetric(vocab_size=4)
    with pytest.raises(ValueError, match='token id 7 is out of range for vocab_size=4'):
        metric.process({}, [sample(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), [[7]])])
