"""tools/analysis_tools/benchmark.py (and the optional peer script) on the tiny BEiT config.

No speed is asserted: only that every phase runs and reports sane, positive numbers.
"""
import json
import platform

import cv2
import numpy as np
import pytest

from tests.tools_helpers import run_tool

CONFIG = 'configs/beit/mim_vit-tiny_1xb8-2it_tiny.py'


def make_image_root(root, n_classes=2, per_class=4):
    rng = np.random.default_rng(0)
    for c in range(n_classes):
        folder = root / 'train' / f'class{c}'
        folder.mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (40 + 4 * i, 48, 3), dtype=np.uint8)
            cv2.imwrite(str(folder / f'{i}.jpg'), img)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('bench_data')
    make_image_root(root)
    return root


def test_benchmark_tool_reports_every_phase(tmp_path, data_root):
    out = tmp_path / 'bench.json'
    proc = run_tool('analysis_tools/benchmark.py', CONFIG, '--iters', '2', '--warmup', '1',
                    '--batch-size', '4', '--matmul-size', '256', '--out', out,
                    '--cfg-options', f'train_dataloader.dataset.data_root={data_root}')
    assert 'images/s' in proc.stdout and '% of the matmul rate' in proc.stdout, proc.stdout
    res = json.loads(out.read_text())
    assert res['batch_size'] == 4 and res['device'] == 'cpu'
    assert set(res['phases']) == {'data', 'train', 'model', 'target', 'infer'}
    for name, phase in res['phases'].items():
        assert len(phase['seconds']) == 2, name
        assert phase['images_per_s'] > 0 and phase['peak_memory_bytes'] > 0, name
    assert res['matmul']['flops_per_s'] > 0
    flops = res['model_flops']
    # the step runs matmuls in forward and backward, the tokenizer's convolutions once
    assert flops['flops_per_step'] > 0 and 0 < flops['utilisation']
    assert any('mm' in op for op in flops['by_op']) and any('conv' in op for op in flops['by_op'])
    assert res['phases']['target']['extra']['flops'] > 0


def test_benchmark_tool_bf16_with_checkpointing(tmp_path, data_root):
    out = tmp_path / 'bench_bf16.json'
    run_tool('analysis_tools/benchmark.py', CONFIG, '--iters', '1', '--warmup', '1',
             '--batch-size', '2', '--matmul-size', '128', '--amp', 'bf16',
             '--checkpoint-blocks', '--phases', 'model', '--out', out,
             '--cfg-options', f'train_dataloader.dataset.data_root={data_root}')
    res = json.loads(out.read_text())
    assert res['optim_wrapper'] == 'AutocastOptimWrapper'
    assert res['applied_hooks'] == ['ActivationCheckpointHook']
    assert res['matmul']['dtype'] == 'bfloat16'
    assert set(res['phases']) == {'model'} and res['phases']['model']['images_per_s'] > 0


def test_benchmark_tool_profile_and_drift(tmp_path, data_root):
    out = tmp_path / 'bench_profile.json'
    proc = run_tool('analysis_tools/benchmark.py', CONFIG, '--iters', '4', '--warmup', '1',
                    '--batch-size', '2', '--matmul-size', '128', '--phases', 'model',
                    '--no-flops', '--profile', '--out', out,
                    '--cfg-options', f'train_dataloader.dataset.data_root={data_root}',
                    env=dict(OMP_NUM_THREADS='2'))
    assert 'profile of one model step' in proc.stdout and 'last/first' in proc.stdout
    assert 'flush-to-zero: ' in proc.stdout
    res = json.loads(out.read_text())
    seconds = res['phases']['model']['seconds']
    drift = res['phases']['model']['drift']
    assert drift['window'] == 2
    assert drift['ratio'] == pytest.approx(sum(seconds[-2:]) / sum(seconds[:2]))
    assert res['flush_denormal']['enabled'] is True
    assert res['flush_denormal']['holds'] is (platform.machine().lower() in {'x86_64', 'amd64'})
    profile = res['profile']
    assert profile['phase'] == 'model' and profile['unprofiled_median_ms'] > 0
    cats = {c['category']: c for c in profile['categories']}
    assert sum(c['ms'] for c in cats.values()) == pytest.approx(profile['wall_ms'], rel=1e-6)
    # a BEiT step: linear layers, attention, the dVAE's convolutions, LayerNorm, AdamW
    for name in ('matmuls', 'attention', 'convolutions', 'norms and activations', 'optimizer'):
        assert cats[name]['ms'] > 0, (name, cats)


def test_peer_script_matches_parameter_counts(tmp_path):
    pytest.importorskip('transformers')
    out = tmp_path / 'peers.json'
    proc = run_tool('analysis_tools/benchmark_peers.py', '--config', CONFIG, '--iters', '1',
                    '--warmup', '1', '--batch-size', '2', '--num-masked', '24', '--out', out)
    res = json.loads(out.read_text())
    assert set(res['frameworks']) == {'beitlab', 'transformers'}
    assert res['speedup_vs_transformers'] > 0 and 'speed-up' in proc.stdout


def test_benchmark_tool_fast_path(tmp_path, data_root):
    """--fast measures the config as tools/train.py --fast trains it (compiling left out here:
    tests/engine/test_fast_path.py checks the compiled loss)."""
    out = tmp_path / 'bench_fast.json'
    proc = run_tool('analysis_tools/benchmark.py', CONFIG, '--iters', '1', '--warmup', '1',
                    '--batch-size', '2', '--matmul-size', '128', '--fast', '--phases', 'model',
                    '--out', out, '--cfg-options', f'train_dataloader.dataset.data_root={data_root}',
                    'fast_path.compile=False')
    res = json.loads(out.read_text())
    from beitlab.engine.fast_path import bf16_supported
    if bf16_supported('cpu'):
        assert res['optim_wrapper'] == 'beitlab.AutocastOptimWrapper' and res['amp'] == 'bf16'
        assert 'fast path: bf16 autocast' in proc.stdout
    else:
        assert 'bf16 skipped: this CPU has no native bfloat16' in res['fast_path']
    assert 'fused AdamW' in res['fast_path'] and 'bf16 tokenizer' in res['fast_path']
    assert not any('compiled' in change for change in res['fast_path'])
    assert res['model_flops']['flops_per_step'] > 0


def test_benchmark_fast_path_alternates_the_variants(tmp_path):
    out = tmp_path / 'ladder.json'
    proc = run_tool('analysis_tools/benchmark_fast_path.py', CONFIG, '--variants',
                    'fp32,fused_optimizer,bf16+fused_optimizer', '--iters', '2', '--warmup', '1',
                    '--batch-size', '2', '--out', out)
    res = json.loads(out.read_text())
    assert [r['variant'] for r in res['rows']] == ['fp32', 'fused_optimizer', 'bf16+fused_optimizer']
    assert all(r['median_s'] > 0 and r['images_per_s'] > 0 for r in res['rows'])
    assert res['rows'][0]['vs_previous'] is None and res['rows'][1]['vs_previous'] > 0
    assert res['batch_size'] == 2 and res['cpu'] and 'vs previous' in proc.stdout
    bad = run_tool('analysis_tools/benchmark_fast_path.py', CONFIG, '--variants', 'fp32,bf17',
                   check=False)
    assert bad.returncode != 0 and "unknown piece(s) ['bf17']" in bad.stderr
