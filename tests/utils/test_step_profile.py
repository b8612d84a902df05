"""One profiled step split into categories (beitlab.utils.step_profile): every operator's
self time lands in exactly one category and the optimizer's scope takes all its operators.
Nothing here is timed against a figure."""
import pytest
import torch
from mmengine.optim import OptimWrapper
from torch import nn

from beitlab.utils.step_profile import (
    CATEGORIES,
    PYTHON,
    categorize_events,
    op_category,
    profile_step,
    profile_table,
)


@pytest.mark.parametrize('name, category', [
    ('aten::addmm', 'matmuls'), ('aten::linear', 'matmuls'), ('MmBackward0', 'matmuls'),
    ('aten::baddbmm', 'matmuls'),
    ('aten::_scaled_dot_product_flash_attention_for_cpu', 'attention'),
    ('aten::_softmax_backward_data', 'attention'), ('SoftmaxBackward0', 'attention'),
    ('aten::mkldnn_convolution', 'convolutions'), ('aten::convolution_backward', 'convolutions'),
    ('aten::native_layer_norm_backward', 'norms and activations'),
    ('aten::gelu', 'norms and activations'), ('aten::native_dropout', 'norms and activations'),
    ('aten::_to_copy', 'casts and copies'), ('aten::copy_', 'casts and copies'),
    ('ToCopyBackward0', 'casts and copies'),
    ('aten::_foreach_lerp_', 'optimizer'), ('aten::_fused_adamw_', 'optimizer'),
    ('aten::addcmul_', 'optimizer'),
    ('graph_0_cpp_fused__to_copy_gelu_view_6', 'compiled kernels'),
    ('cpp_fused_native_layer_norm_0', 'compiled kernels'),
    ('aten::log_softmax', None), ('aten::add', None), ('aten::view', None), ('aten::t', None),
])
def test_op_category(name: str, category) -> None:
    assert op_category(name) == category


def test_a_profiled_step_splits_into_categories() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.LayerNorm(64), nn.Linear(64, 32))
    # foreach=False: one sqrt/div/mul per parameter, none of them named like an optimizer
    wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), foreach=False))
    x = torch.randn(16, 32)

    def step() -> None:
        h = model(x.to(torch.float64).to(torch.float32))
        loss = (h @ h.t()).softmax(-1).log().mean()
        wrapper.update_params(loss)
    step()
    profile = profile_step(step, top=1000)
    cats = {c['category']: c for c in profile['categories']}
    assert tuple(cats) == CATEGORIES
    for name in ('matmuls', 'attention', 'norms and activations', 'casts and copies',
                 'optimizer'):
        assert cats[name]['ms'] > 0 and cats[name]['calls'] > 0, (name, cats[name])
    assert cats['convolutions']['ms'] == 0
    # the per-parameter AdamW arithmetic belongs to the optimizer scope, not to 'other ops'
    optimizer = {op for op, _ in cats['optimizer']['top_ops']}
    assert {'aten::sqrt', 'aten::mul_', 'aten::lerp_'} <= optimizer, optimizer
    total_ms = sum(c['ms'] for c in profile['categories'])
    assert total_ms == pytest.approx(profile['wall_ms'], rel=1e-6)
    assert sum(c['share'] for c in profile['categories']) == pytest.approx(1.0)
    assert cats[PYTHON]['ms'] >= 0
    table = profile_table(profile)
    assert table.splitlines()[0].split()[:3] == ['category', 'ms', '%']
    assert all(name in table for name in CATEGORIES)


class _Event:
    """The attributes of a ``torch.profiler`` FunctionEvent that the categories read."""

    def __init__(self, name, self_us, parent=None, thread=1, annotation=False):
        self.name, self.self_cpu_time_total, self.cpu_parent = name, self_us, parent
        self.thread, self.is_user_annotation = thread, annotation


def test_categorize_events_inherits_and_keeps_one_thread() -> None:
    linear = _Event('aten::linear', 10)
    step = _Event('Optimizer.step#AdamW.step', 50, annotation=True)
    node = _Event('AddmmBackward0', 5)
    events = [linear, _Event('aten::t', 20, linear), _Event('aten::addmm', 500, linear),
              _Event('aten::_to_copy', 30, linear),   # autocast's cast inside linear
              node, _Event('aten::t', 7, node), _Event('aten::mm', 300, node),
              step, _Event('aten::mul_', 40, step), _Event('aten::copy_', 3, step),
              _Event('aten::add', 11),
              _Event('aten::mm', 99, thread=2)]       # a less busy thread: left out
    profile = categorize_events(events, wall_s=0.001)
    ms = {c['category']: c['ms'] for c in profile['categories']}
    assert ms['matmuls'] == pytest.approx((10 + 20 + 500 + 7 + 300) / 1e3)
    assert ms['casts and copies'] == pytest.approx(0.030)
    assert ms['optimizer'] == pytest.approx(0.043)
    assert ms['other ops'] == pytest.approx(0.011)
    # 1 ms of wall time minus the operators' self times (annotations and nodes are not ops)
    assert ms[PYTHON] == pytest.approx(1.0 - 0.921)


def test_compiled_kernels_count_even_as_annotations() -> None:
    """inductor's kernels reach the profiler as record_function scopes inside the graph call;
    they are operator time ('compiled kernels'), the graph call itself is not."""
    call = _Event('## Call CompiledFxGraph fabc ##', 5, annotation=True)
    events = [call, _Event('graph_0_cpp_fused_gelu_view_2', 200, call, annotation=True),
              _Event('aten::mm', 300, call)]
    ms = {c['category']: c['ms'] for c in categorize_events(events, wall_s=0.001)['categories']}
    assert ms['compiled kernels'] == pytest.approx(0.2)
    assert ms['matmuls'] == pytest.approx(0.3)
    assert ms[PYTHON] == pytest.approx(0.5)
