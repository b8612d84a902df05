"""Accuracy: top-1/top-5 against hand computations, ties, per-class, and k > classes."""
import pytest
import torch
from mmengine.structures import BaseDataElement

from beitlab.evaluation.metrics.accuracy import Accuracy, topk_correct


def run(metric: Accuracy, scores, labels) -> dict:
    samples = []
    for s, label in zip(scores, labels):
        d = BaseDataElement()
        d.pred_score = torch.tensor(s, dtype=torch.float32)
        d.gt_label = torch.tensor([label])
        samples.append(d.to_dict())  # the Evaluator hands metrics dicts
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_top1_top5_by_hand():
    # 6 classes, 4 samples; rank of the true class (0 = best) by hand: 0, 1, 5, 5
    scores = [[.9, .1, 0, 0, 0, 0],            # label 0: first
              [.1, .5, .3, .05, .05, 0],        # label 2: order 1, 2, ... -> second
              [.3, .2, .15, .14, .11, .10],     # label 5: last
              [.01, .02, .03, .04, .05, .85]]   # label 0: order 5, 4, 3, 2, 1, 0 -> last
    labels = [0, 2, 5, 0]
    # top-1: sample 0 only -> 25 %; top-2: samples 0, 1 -> 50 %; top-5: samples 0, 1 -> 50 %
    out = run(Accuracy(topk=(1, 2, 5)), scores, labels)
    assert out == pytest.approx({'top1': 25.0, 'top2': 50.0, 'top5': 50.0})


def test_ties_rank_the_lower_class_index_first():
    scores = torch.tensor([[0.5, 0.5, 0.0],
                           [0.5, 0.5, 0.0],
                           [0.2, 0.2, 0.2]])
    labels = torch.tensor([1, 0, 2])
    c = topk_correct(scores, labels, (1, 2))
    # row 0: order 0, 1, 2 -> label 1 is second; row 1: label 0 first; row 2: label 2 is third
    assert c[1].tolist() == [False, True, False]
    assert c[2].tolist() == [True, True, False]
    # reversing the column order moves the tie break with the class index, not the position
    assert topk_correct(scores.flip(1), 2 - labels, (1, ))[1].tolist() == [True, False, True]


def test_k_larger_than_classes_is_a_clear_error():
    with pytest.raises(ValueError, match=r'top-5 .* 3 classes'):
        run(Accuracy(topk=(1, 5)), [[.2, .3, .5]], [2])
    with pytest.raises(ValueError, match='positive integers'):
        Accuracy(topk=(0, ))


def test_per_class_accuracy():
    scores = [[.9, .1], [.2, .8], [.6, .4], [.3, .7]]
    labels = [0, 1, 1, 1]  # class 0: 1/1, class 1: 2/3
    out = run(Accuracy(topk=1, per_class=True, class_names=['a', 'b']), scores, labels)
    assert out['top1'] == pytest.approx(75.0)
    assert out['top1_class_a'] == pytest.approx(100.0)
    assert out['top1_class_b'] == pytest.approx(200 / 3)
    assert out['mean_class_top1'] == pytest.approx((100 + 200 / 3) / 2)
