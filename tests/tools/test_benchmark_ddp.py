"""tools/analysis_tools/benchmark_ddp.py: log parsing, and one process against
two DDP processes through tools/dist_train.sh on the toy config (no speed asserted)."""
import importlib.util
import json

from tests.tools_helpers import REPO_ROOT, run_tool

_spec = importlib.util.spec_from_file_location(
    'benchmark_ddp', REPO_ROOT / 'tools' / 'analysis_tools' / 'benchmark_ddp.py')
benchmark_ddp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark_ddp)


def test_parse_iteration_times_reads_mmengine_lines() -> None:
    log = ('11/24 13:48:05 - mmengine - INFO - Iter(train) [ 9/25]  lr: 1.0000e-02  '
           'eta: 0:00:00  time: 0.5123  data_time: 0.0101  loss: 4.7094\n'
           '11/24 13:48:06 - mmengine - INFO - Iter(train) [10/25]  lr: 1.0000e-02  '
           'eta: 0:00:00  time: 0.4877  data_time: 0.0200  loss: 4.5298\n'
           '11/24 13:48:06 - mmengine - INFO - Saving checkpoint at 10 iterations\n')
    assert benchmark_ddp.parse_iteration_times(log) == {9: (0.5123, 0.0101),
                                                        10: (0.4877, 0.0200)}


def test_one_process_against_ddp_on_the_toy_config(tmp_path) -> None:
    out = tmp_path / 'ddp.json'
    proc = run_tool('analysis_tools/benchmark_ddp.py', 'tests/data/configs/toy_regression.py',
                    '--layouts', '1x1,Nx1', '--iters', '3', '--warmup', '1',
                    '--work-dir', tmp_path / 'runs', '--out', out)
    assert '2 proc x 1 thread (DDP)' in proc.stdout, proc.stdout
    res = json.loads(out.read_text())
    assert set(res['runs']) == {'1x1', '2x1'}
    assert res['batch_per_process'] == 4
    for run in res['runs'].values():
        assert len(run['iter_times_s']) == 3 and run['images_per_s'] > 0
    assert res['runs']['2x1']['images_per_s'] == 2 * 4 / res['runs']['2x1']['median_s']
    assert set(res['ratios']) == {'2x1/1x1'}
