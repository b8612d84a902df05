"""tools/analysis_tools/benchmark_attention.py: one repetition of every form and case at
the Fashion-MNIST shape writes a row per form, marks the form 'auto' takes, and checks its
timed layer against BEiTAttention (no speed asserted)."""
import importlib.util
import json

import pytest
import torch

from beitlab.models.backbones.beit_layers import BEiTAttention
from beitlab.models.backbones.rel_pos_bias import RelativePositionBias
from beitlab.ops.attention import ATTN_CASES
from tests.tools_helpers import REPO_ROOT

_spec = importlib.util.spec_from_file_location(
    'benchmark_attention', REPO_ROOT / 'tools' / 'analysis_tools' / 'benchmark_attention.py')
benchmark_attention = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark_attention)


def test_one_repetition_writes_every_form_and_case(tmp_path, capsys) -> None:
    out = tmp_path / 'attention.json'
    benchmark_attention.main(['--reps', '1', '--warmup', '0', '--shapes', 'fmnist',
                              '--out', str(out)])
    printed = capsys.readouterr().out
    assert 'cpu=' in printed and 'vs_sdpa' in printed
    res = json.loads(out.read_text())
    rows = res['rows']
    forms = {'fp32': {'sdpa', 'explicit'}, 'bf16': {'sdpa', 'explicit', 'explicit-sm32'}}
    for dtype, names in forms.items():
        for case in ATTN_CASES:
            group = [r for r in rows if r['dtype'] == dtype and r['case'] == case]
            assert {r['form'] for r in group} == names, (dtype, case)
            assert [r['form'] for r in group if r['auto']] == \
                ['explicit' if dtype == 'bf16' and case != 'inference' else 'sdpa']
            assert all(r['ms'] > 0 and r['tokens'] == 65 for r in group)
    assert res['machine']['reps'] == 1


def test_layer_check_catches_a_different_layer(monkeypatch) -> None:
    attn, rel = BEiTAttention(16, 2), RelativePositionBias((2, 2), 2)
    with torch.no_grad():
        rel.relative_position_bias_table.normal_()
        attn.q_bias.normal_()
    x = torch.randn(2, 5, 16)
    benchmark_attention.check_layer_forward(attn, rel, x)
    original = benchmark_attention.layer_forward
    # a timed layer 1 % off the module
    monkeypatch.setattr(benchmark_attention, 'layer_forward',
                        lambda a, x, b, core: original(a, x, b, core) * 1.01)
    with pytest.raises(RuntimeError, match='differs from BEiTAttention'):
        benchmark_attention.check_layer_forward(attn, rel, x)


def test_wrong_arguments_are_named(capsys) -> None:
    with pytest.raises(SystemExit):
        benchmark_attention.parse_args(['--shapes', 'vit-h'])
    assert "--shapes: 'vit-h' is not one of ['fmnist', 'vit-b']" in capsys.readouterr().err
