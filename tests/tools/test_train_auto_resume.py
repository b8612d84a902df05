"""tools/train.py --resume (no value) and --auto-resume: an error when there is nothing to
resume, a fresh start that says so, and a resume that passes over a truncated newest file."""
import torch

from beitlab.checkpoint import safe_torch_load

from ..tools_helpers import run_tool

CONFIG = 'tests/data/configs/toy_regression_preemptible.py'


def _iters(n: int) -> list:
    return ['--cfg-options', f'train_cfg.max_iters={n}']


def test_resume_with_nothing_to_resume_is_one_error_line(tmp_path) -> None:
    work = tmp_path / 'empty_work'
    for setup in ('no folder', 'empty last_checkpoint'):
        if setup == 'empty last_checkpoint':
            work.mkdir()
            (work / 'last_checkpoint').write_text('')
        proc = run_tool('train.py', CONFIG, '--work-dir', work, '--resume', *_iters(2),
                        check=False, timeout=300)
        assert proc.returncode == 1, (setup, proc.stdout[-2000:], proc.stderr[-2000:])
        assert 'Traceback' not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if 'error:' in line]
        assert len(errors) == 1 and errors[0].startswith('train.py: error: --resume: nothing to '
                                                         f"resume from in the work dir '{work}'")
        assert 'Iter(train)' not in proc.stdout + proc.stderr  # nothing was trained
        assert not (work / 'iter_1.pth').exists()


def test_auto_resume_starts_fresh_then_resumes_past_a_truncated_file(tmp_path) -> None:
    work = tmp_path / 'work'
    proc = run_tool('train.py', CONFIG, '--work-dir', work, '--auto-resume', *_iters(2),
                    timeout=300)
    log = proc.stdout + proc.stderr
    assert f'no checkpoint in {work}: starting from iteration 0' in log
    assert 'Iter(train) [1/2]' in log and (work / 'iter_2.pth').exists()
    # the line is also in the run's log file, before the first iteration
    log_file = next(work.glob('*/*.log')).read_text()
    assert log_file.index('starting from iteration 0') < log_file.index('Iter(train) [1/2]')

    proc = run_tool('train.py', CONFIG, '--work-dir', work, '--auto-resume', *_iters(3),
                    timeout=300)
    log = proc.stdout + proc.stderr
    assert 'starting from iteration 0' not in log and 'resumed epoch: 0, iter: 2' in log
    third = safe_torch_load(str(work / 'iter_3.pth'))
    assert {float(s['step']) for s in third['optimizer']['state'].values()} == {3.0}

    # the newest file is truncated (e.g. written in place by another tool and killed) and
    # last_checkpoint names it: --resume warns, takes iter_3 and rewrites iter_4 completely
    data = (work / 'iter_3.pth').read_bytes()
    (work / 'iter_4.pth').write_bytes(data[:len(data) // 3])
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    proc = run_tool('train.py', CONFIG, '--work-dir', work, '--resume', *_iters(4), timeout=300)
    log = proc.stdout + proc.stderr
    assert f"names '{work / 'iter_4.pth'}', which cannot be resumed from" in log
    assert f"resuming from '{work / 'iter_3.pth'}'" in log and 'resumed epoch: 0, iter: 3' in log
    fourth = safe_torch_load(str(work / 'iter_4.pth'))
    assert fourth['meta']['iter'] == 4
    assert {float(s['step']) for s in fourth['optimizer']['state'].values()} == {4.0}
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_4.pth')
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_4.pth']  # max_keep_ckpts=1
    assert not torch.equal(fourth['state_dict']['linear.weight'],
                           third['state_dict']['linear.weight'])


def test_resume_from_a_truncated_file_is_named(tmp_path) -> None:
    bad = tmp_path / 'iter_9.pth'
    bad.write_bytes(b'PK\x03\x04 cut short')
    proc = run_tool('train.py', CONFIG, '--work-dir', tmp_path / 'w', '--resume', bad,
                    check=False, timeout=300)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert f"train.py: error: --resume '{bad}': cannot resume from it" in proc.stderr
    proc = run_tool('train.py', CONFIG, '--resume', bad, '--auto-resume', check=False, timeout=300)
    assert proc.returncode == 2 and 'not allowed with argument' in proc.stderr


def test_resume_true_in_the_config_is_auto_resume(tmp_path) -> None:
    work = tmp_path / 'work'
    proc = run_tool('train.py', CONFIG, '--work-dir', work, '--cfg-options', 'resume=True',
                    'train_cfg.max_iters=1', timeout=300)
    log = proc.stdout + proc.stderr
    assert f'no checkpoint in {work}: starting from iteration 0' in log
    assert 'Auto resumed from the latest checkpoint None' not in log
