"""KNNMonitorHook: the weighted k-NN by hand, a state-preserving evaluation, knn/ keys in the log."""
import copy
import glob
import json
import math
import random

import numpy as np
import pytest
import torch
from mmengine.config import Config

from beitlab.engine.hooks.knn_monitor_hook import KNNMonitorHook, knn_predict, knn_top1
from beitlab.utils import register_all_modules
from tests.tools_helpers import REPO_ROOT

CONFIG = REPO_ROOT / 'tests' / 'data' / 'configs' / 'knn_tiny_beit.py'


def test_weighted_knn_equals_a_hand_computation() -> None:
    # Bank on the unit circle: one class-1 point at the query, two class-0 points at cosine 0.6.
    bank = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8], [-1.0, 0.0]])
    labels = torch.tensor([1, 0, 0, 2])
    query = torch.tensor([[2.0, 0.0]])          # not normalised: cosine similarity is used
    # T = 0.07: exp(1/0.07) = 1.6e6 outweighs 2 exp(0.6/0.07) = 1.06e4 -> class 1
    w1, w0 = math.exp(1 / 0.07), 2 * math.exp(0.6 / 0.07)
    assert w1 > w0
    assert knn_predict(bank, labels, query, k=3, temperature=0.07).tolist() == [1]
    # T = 10: exp(0.1) = 1.105 < 2 exp(0.06) = 2.124 -> class 0 (the weights matter)
    assert math.exp(1 / 10) < 2 * math.exp(0.6 / 10)
    assert knn_predict(bank, labels, query, k=3, temperature=10.0).tolist() == [0]
    # k = 20 (capped at the 4 bank points) adds the class-2 point at cosine -1:
    # exp(-1/10) = 0.905 < both -> still class 0
    assert knn_predict(bank, labels, query, k=20, temperature=10.0).tolist() == [0]
    # top-1 over two queries, one right and one wrong
    queries = torch.tensor([[1.0, 0.05], [-1.0, 0.1]])
    assert knn_top1(bank, labels, queries, torch.tensor([1, 0]), k=1) == pytest.approx(0.5)


def _cfg(work_dir, hooks: bool = True) -> Config:
    cfg = Config.fromfile(str(CONFIG))
    cfg.work_dir = str(work_dir)
    cfg.visualizer.name = f'visualizer-{work_dir}'   # one mmengine instance per run
    if not hooks:
        cfg.custom_hooks = []
    return cfg


def _json_log(work_dir) -> list:
    (path, ) = glob.glob(str(work_dir / '*' / 'vis_data' / '2*.json'))
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _train(work_dir, hooks: bool = True):
    from beitlab.engine.runner import BeitlabRunner
    register_all_modules()
    runner = BeitlabRunner.from_cfg(_cfg(work_dir, hooks))
    runner.train()
    return runner


def test_evaluation_restores_modes_rng_and_backbone(tmp_path) -> None:
    from beitlab.apis import layer_features
    from beitlab.engine.runner import BeitlabRunner
    register_all_modules()
    runner = BeitlabRunner.from_cfg(_cfg(tmp_path))
    (hook, ) = [h for h in runner.hooks if isinstance(h, KNNMonitorHook)]
    model = runner.model
    model.train()
    model.target_generator.eval()           # a mix of modes, as a frozen tokenizer gives
    modes = {name: m.training for name, m in model.named_modules()}
    state = copy.deepcopy(model.state_dict())
    indices, out_type = list(model.backbone.out_indices), model.backbone.out_type
    hook.before_train(runner)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    rng = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())

    metrics = hook.evaluate(runner, step=7)

    assert {name: m.training for name, m in model.named_modules()} == modes
    assert random.getstate() == rng[0]
    assert np.array_equal(np.random.get_state()[1], rng[1])
    assert torch.equal(torch.get_rng_state(), rng[2])
    assert (model.backbone.out_indices, model.backbone.out_type) == (indices, out_type)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert set(metrics) == {'knn/top1_layer1', 'knn/top1_layer1_mean', 'knn/top1_layer2',
                            'knn/top1_layer2_mean', 'knn/time_s'}

    # the same numbers from features extracted here, through the backbone's public API
    model.eval()
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)   # the tiny config's
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    sets = []
    for labelled in hook._sets:
        feats = {('cls', 0): [], ('cls', 1): [], ('mean', 0): [], ('mean', 1): []}
        labels = []
        with torch.no_grad():
            for inputs, lab in labelled.batches(cache=True):
                x = (inputs.float().flip(1) - mean) / std           # BGR -> RGB, normalise
                for pooling in ('cls', 'mean'):
                    for i, f in enumerate(layer_features(model.backbone, x, (0, 1), pooling)):
                        feats[(pooling, i)].append(f)
                labels.append(lab)
        sets.append(({k: torch.cat(v) for k, v in feats.items()}, torch.cat(labels)))
    (bank, bank_labels), (val, val_labels) = sets
    assert len(bank_labels) == 64 and len(val_labels) == 32
    for (pooling, i), key in ((('cls', 0), 'knn/top1_layer1'), (('mean', 1), 'knn/top1_layer2_mean')):
        expected = knn_top1(bank[(pooling, i)], bank_labels, val[(pooling, i)], val_labels, k=5,
                            num_classes=10)
        assert metrics[key] == pytest.approx(expected)


def test_training_with_the_hook_is_identical_and_logs_knn(tmp_path) -> None:
    _train(tmp_path / 'with')
    _train(tmp_path / 'without', hooks=False)
    with_hook, without = _json_log(tmp_path / 'with'), _json_log(tmp_path / 'without')
    losses = [r['loss'] for r in with_hook if 'loss' in r]
    assert len(losses) == 3
    assert losses == [r['loss'] for r in without if 'loss' in r]
    knn = [r for r in with_hook if 'knn/time_s' in r]
    assert [r['step'] for r in knn] == [2, 3]              # every 2 iterations and at the end
    for r in knn:
        assert r['knn/time_s'] > 0
        for key in ('knn/top1_layer1', 'knn/top1_layer2', 'knn/top1_layer2_mean'):
            assert 0.0 <= r[key] <= 1.0
    assert not any(k.startswith('knn/') for r in without for k in r)


def test_sharded_features_equal_the_single_process_ones(tmp_path) -> None:
    """Two gloo ranks each extract half of the set; the all-gather gives every rank the
    single-process features, in the same order."""
    import torch.multiprocessing as mp

    from beitlab.utils.runtime import find_free_port
    from tests.monitoring_components import knn_features, knn_features_worker

    mp.spawn(knn_features_worker, args=(2, find_free_port(), str(tmp_path)), nprocs=2)
    local_feats, local_labels = knn_features()
    assert len(local_labels) == 37
    for rank in (0, 1):
        feats, labels = torch.load(tmp_path / f'rank{rank}.pt', weights_only=True)
        assert torch.equal(labels, local_labels)
        assert feats.keys() == local_feats.keys()
        for key, value in feats.items():
            torch.testing.assert_close(value, local_feats[key], rtol=0, atol=1e-5)


def test_plot_tool_draws_the_logged_curve(tmp_path) -> None:
    from tests.tools_helpers import run_tool
    log = tmp_path / 'log.json'
    log.write_text('{"loss": 3.0, "step": 1}\n{"knn/top1_layer2": 0.25, "knn/time_s": 1.0, "step": 2}\n'
                   '{"knn/top1_layer2": 0.5, "knn/time_s": 1.0, "step": 4}\n')
    out = tmp_path / 'curve.png'
    proc = run_tool('analysis_tools/plot_knn_curve.py', log, '--out', out)
    assert 'top1_layer2\t2\t0.2500' in proc.stdout and 'top1_layer2\t4\t0.5000' in proc.stdout
    assert out.stat().st_size > 1000
    again = run_tool('analysis_tools/plot_knn_curve.py', log, '--out', out, check=False)
    assert again.returncode == 1 and '--force' in again.stderr
