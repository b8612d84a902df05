"""Measurement helpers of the benchmark tool: FLOP counts checked by hand."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from beitlab.utils.benchmark import (
    PhaseResult,
    count_flops,
    format_table,
    load_average,
    measure_matmul_rate,
    peak_rss_bytes,
    reset_peak_rss,
    step_drift,
    time_iterations,
)


def test_count_flops_linear_forward_backward():
    torch.manual_seed(0)
    layer = nn.Linear(16, 32)
    x = torch.randn(8, 16, requires_grad=True)
    flops = count_flops(lambda: layer(x).sum().backward())
    # forward 2*B*I*O, backward the same twice (input and weight gradients)
    assert flops['total'] == 3 * 2 * 8 * 16 * 32


def test_count_flops_cpu_attention_is_counted():
    # torch's counter misses the CPU flash-attention kernel; ours adds it.
    b, h, n, d = 2, 3, 10, 8
    q = torch.randn(b, h, n, d, requires_grad=True)
    bias = torch.randn(1, h, n, n)
    fwd = count_flops(lambda: F.scaled_dot_product_attention(q, q, q, attn_mask=bias))
    per_product = 2 * b * h * n * n * d
    assert fwd['total'] == 2 * per_product
    both = count_flops(
        lambda: F.scaled_dot_product_attention(q, q, q, attn_mask=bias).sum().backward())
    assert both['total'] == 6 * per_product  # backward = four products of the same size


def test_time_iterations_and_table():
    calls = []
    res = time_iterations('x', lambda: calls.append(1), iters=4, warmup=2, images_per_iter=8)
    assert len(calls) == 6 and len(res.seconds) == 4
    d = res.to_dict()
    assert d['images_per_s'] > 0 and d['median_s'] > 0
    table = format_table([dict(phase='x', ips=d['images_per_s'])], ['phase', 'ips'])
    assert table.splitlines()[0].split() == ['phase', 'ips']
    assert isinstance(PhaseResult('y', 1, [0.5]).images_per_s, float)


def test_matmul_rate_and_memory():
    mm = measure_matmul_rate('cpu', torch.float32, size=128, repeats=2)
    assert mm['flops_per_s'] > 0 and mm['best_flops_per_s'] >= mm['flops_per_s']
    reset_peak_rss()
    peak = peak_rss_bytes()
    assert peak is None or peak > 0


def test_step_drift_compares_the_first_and_last_ten():
    slowing = [1.0] * 10 + [5.0] * 10 + [1.2] * 10
    drift = step_drift(slowing)
    assert drift['window'] == 10 and drift['first_mean_s'] == 1.0
    assert drift['ratio'] == pytest.approx(1.2) and drift['flagged']
    steady = step_drift([1.0] * 20 + [1.05] * 10)
    assert steady['ratio'] == pytest.approx(1.05) and not steady['flagged']
    assert step_drift([2.0] * 10 + [1.5] * 10)['flagged']  # faster by 25 % is drift too
    # fewer than 20: half each, the middle one left out
    short = step_drift([1.0, 9.0, 3.0])
    assert short['window'] == 1 and short['ratio'] == 3.0
    assert step_drift([1.0]) is None
    assert PhaseResult('x', 1, [1.0, 2.0]).to_dict()['drift']['ratio'] == 2.0


def test_load_average_rounds_the_three_readings(monkeypatch):
    monkeypatch.setattr('os.getloadavg', lambda: (1.23456, 0.5, 2.0))
    assert load_average() == [1.23, 0.5, 2.0]


def test_load_average_is_none_where_the_platform_has_none(monkeypatch):
    def unavailable():
        raise OSError('no load average')
    monkeypatch.setattr('os.getloadavg', unavailable)
    assert load_average() is None
