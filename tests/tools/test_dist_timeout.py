"""A stalled rank makes a two-process CPU DDP job fail within ``env_cfg.dist_cfg.timeout``
instead of hanging, and the error names the rank and the operation."""
import contextlib
import glob
import os
import signal
import subprocess
import sys
import time

from beitlab.utils.runtime import find_free_port

from ..tools_helpers import REPO_ROOT

STALL_CFG = 'tests/data/configs/toy_regression_stalling_rank.py'
TIMEOUT_S = 10
# two interpreter starts and imports on a loaded 2-core machine, torchrun's teardown
MARGIN_S = 90


def descendants(pid: int) -> list:
    """Every process below ``pid`` (from /proc; torchrun starts each worker with ``setsid``,
    in a process group of its own, so killing the launcher's group does not reach them)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in glob.glob(f'/proc/{parent}/task/*/children'):
            try:
                with open(task) as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def run_bounded(cmd: list, limit: float, log_path) -> tuple:
    """Run ``cmd`` from the repository root with its output in ``log_path``; kill it and every
    process below it (torchrun and its workers) when it still runs after ``limit`` seconds.
    Returns ``(returncode or None when killed, output, seconds)``."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS='1',
               PORT=str(find_free_port()))
    start = time.monotonic()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            for pid in [proc.pid, *descendants(proc.pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait()
            code = None
    return code, open(log_path).read(), time.monotonic() - start


def test_stalled_rank_fails_the_job_within_the_timeout(tmp_path) -> None:
    code, out, took = run_bounded(
        ['bash', 'tools/dist_train.sh', STALL_CFG, '2', '--work-dir', str(tmp_path / 'w'),
         '--cfg-options', f'env_cfg.dist_cfg.timeout={TIMEOUT_S}'], TIMEOUT_S + MARGIN_S,
        tmp_path / 'log.txt')
    assert code is not None, f'still running after {took:.0f} s:\n{out[-3000:]}'
    assert code != 0, out[-3000:]
    # training had started: rank 0 finished its first step before waiting for rank 1
    assert 'Iter(train) [1/4]' in out, out[-3000:]
    assert 'Iter(train) [2/4]' not in out, out[-3000:]
    assert f'{TIMEOUT_S * 1000}ms' in out or f'after {TIMEOUT_S} s' in out, out[-3000:]
    assert 'timed out' in out.lower(), out[-3000:]


def test_timeout_error_names_rank_and_operation(tmp_path) -> None:
    code, out, took = run_bounded(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
         '--master_port', str(find_free_port()), 'tests/tools/dist_timeout_script.py', '5'],
        5 + MARGIN_S, tmp_path / 'log.txt')
    assert code is not None and code != 0, out[-3000:]
    line = next((ln for ln in out.splitlines() if ln.startswith('ERROR')), None)
    assert line is not None, out[-3000:]
    assert line.startswith('ERROR DistributedTimeoutError: rank 0 of 2: '
                           'torch.distributed.all_reduce (recv) timed out after 5 s'), line
    assert 'env_cfg.dist_cfg.timeout' in line, line
