"""tools/train.py: a two-iteration run, a resume that continues with the same
optimizer state, and tools/dist_train.sh with two CPU processes."""
import torch

from beitlab.checkpoint import safe_torch_load
from beitlab.utils import register_all_modules
from beitlab.utils.runtime import find_free_port

from ..tools_helpers import run_tool

TOY = 'tests/data/configs/toy_regression.py'


def test_train_then_resume_continues_state(tmp_path) -> None:
    register_all_modules()
    work = tmp_path / 'toy'
    run_tool('train.py', TOY, '--work-dir', work)
    first = safe_torch_load(work / 'iter_2.pth')
    assert first['meta']['iter'] == 2

    # --resume with no value takes the latest checkpoint of the work dir.
    proc = run_tool('train.py', TOY, '--work-dir', work, '--resume',
                    '--cfg-options', 'train_cfg.max_iters=3')
    assert 'resumed' in (proc.stdout + proc.stderr).lower()
    third = safe_torch_load(work / 'iter_3.pth')
    assert third['meta']['iter'] == 3
    # Adam's step counter continued from 2 instead of restarting at 0.
    steps = [s['step'] for s in third['optimizer']['state'].values()]
    assert all(float(step) == 3 for step in steps), steps

    # Resuming from an explicit path into another work dir repeats iteration 3 bit
    # for bit: same weights, optimizer moments and data order were restored.
    work2 = tmp_path / 'toy2'
    run_tool('train.py', TOY, '--work-dir', work2, '--resume', work / 'iter_2.pth',
             '--cfg-options', 'train_cfg.max_iters=3')
    again = safe_torch_load(work2 / 'iter_3.pth')
    assert again['meta']['iter'] == 3
    for key, value in third['state_dict'].items():
        assert torch.equal(value, again['state_dict'][key]), key
        assert not torch.equal(value, first['state_dict'][key]), key


def test_dist_train_two_cpu_processes(tmp_path) -> None:
    work = tmp_path / 'dist'
    proc = run_tool('dist_train.sh', TOY, '2', '--work-dir', work,
                    env={'PORT': str(find_free_port())})
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [2/2]' in log, log[-3000:]
    assert (work / 'iter_2.pth').exists()
    ckpt = safe_torch_load(work / 'iter_2.pth')
    assert ckpt['meta']['iter'] == 2


def test_amp_on_cpu_uses_bf16_autocast(tmp_path) -> None:
    proc = run_tool('train.py', TOY, '--work-dir', tmp_path / 'amp', '--amp')
    log = proc.stdout + proc.stderr
    assert "type='beitlab.AutocastOptimWrapper'" in log and "dtype='bfloat16'" in log
    assert 'Iter(train) [2/2]' in log
