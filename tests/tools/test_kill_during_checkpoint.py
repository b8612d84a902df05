"""Fault injection: ``SIGKILL`` a training run and a converter at seeded random moments, many of
them inside a checkpoint write, and check that nothing is lost.

Training keeps one checkpoint (``max_keep_ckpts=1``) and saves every iteration, the setting in
which mmengine's own hook deletes the only checkpoint before writing the next one. Every
``os.fsync`` is slowed (``tests/slow_fsync.py``) so that the window between writing a temporary
file and renaming it over the destination is wide enough to be hit on purpose. After each kill
the work dir must hold an intact checkpoint no older than the previous one, no torn file, and
``tools/train.py --resume`` must continue from it; the run then completes with the optimizer
state of an uninterrupted run's step count.
"""
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import torch

from beitlab.checkpoint import safe_torch_load
from beitlab.utils import find_resume_checkpoint
from beitlab.utils.resume import checkpoint_problem

from ..tools_helpers import REPO_ROOT

CONFIG = 'tests/data/configs/toy_regression_preemptible.py'
MAX_ITERS = 40
KILLS = 20
DELAY = 0.08  # seconds added to every fsync of the training runs
CKPT_TEMP = re.compile(r'^\.iter_\d+\.pth\.\w+\.tmp$')
POINTER_TEMP = re.compile(r'^\.last_checkpoint\.\w+\.tmp$')
TEMPS = {'ckpt': CKPT_TEMP, 'pointer': POINTER_TEMP,
         'published': re.compile(r'^\.published\.pth\.\w+\.tmp$')}

_quiet = logging.getLogger('test_kill_during_checkpoint')
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def _env(delay: float) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(REPO_ROOT), env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    env.update(OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1', BEITLAB_TEST_FSYNC_DELAY=str(delay))
    return env


def _train(work: Path, resume: bool, log_path: Path, delay: float = DELAY) -> subprocess.Popen:
    cmd = [sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work),
           '--cfg-options', f'train_cfg.max_iters={MAX_ITERS}']
    if resume:
        cmd.append('--resume')
    log = open(log_path, 'w')
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=_env(delay), stdout=log,
                            stderr=subprocess.STDOUT)
    log.close()
    return proc


def _pointer(work: Path) -> str:
    try:
        return (work / 'last_checkpoint').read_text()
    except OSError:
        return ''


def _wait(proc: subprocess.Popen, folder: Path, event: str, count: int,
          timeout: float = 120) -> bool:
    """Wait for the ``count``-th new ``event`` of this process: a temporary file of the kind
    named in :data:`TEMPS` (``'ckpt'``, ``'pointer'``, ``'published'``) or a finished save
    (``'saved'``: ``last_checkpoint`` changed). False if the process exited first."""
    seen, last = set(), _pointer(folder)
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if event == 'saved':
            now = _pointer(folder)
            if now and now != last:
                seen.add(now)
                last = now
        else:
            try:
                seen.update(n for n in os.listdir(folder) if TEMPS[event].match(n))
            except FileNotFoundError:
                pass
        if len(seen) >= count:
            return True
        assert time.monotonic() < deadline, f'no {event} #{count} within {timeout} s'
        time.sleep(0.003)
    return False


def _checkpoints(work: Path) -> list:
    return sorted(p for p in work.glob('iter_*.pth'))


def _iter_of(path: str) -> int:
    return int(safe_torch_load(path)['meta']['iter'])


def test_training_killed_twenty_times_loses_nothing(tmp_path) -> None:
    rng = random.Random(20240601)
    work = tmp_path / 'work'
    resumed_iter: Optional[int] = None
    inside_write = 0
    for round_ in range(KILLS):
        log_path = tmp_path / f'round_{round_:02d}.log'
        proc = _train(work, resume=round_ > 0, log_path=log_path)
        progress = resumed_iter or 0
        mode = rng.choice(['ckpt', 'ckpt', 'pointer', 'saved'])
        # at most three iterations per round, one near the end, so all kills happen;
        # the first round needs one complete checkpoint before it may be killed
        count = 1 if progress >= MAX_ITERS - 8 else rng.randint(1, 3)
        if round_ == 0 and mode == 'ckpt':
            count = max(count, 2)
        try:
            reached = _wait(proc, work, mode, count)
            assert reached, f'round {round_}: the run ended first:\n{log_path.read_text()[-3000:]}'
            time.sleep(rng.uniform(0, 0.8 * DELAY) if mode != 'saved' else rng.uniform(0, 0.4))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        if any(CKPT_TEMP.match(n) or POINTER_TEMP.match(n) for n in os.listdir(work)):
            inside_write += 1  # the kill hit between writing a temporary file and its rename

        log = log_path.read_text()
        if resumed_iter is not None:
            assert f'resumed epoch: 0, iter: {resumed_iter}' in log, log[-3000:]
        # no torn checkpoint, at most the new one and the one it replaces
        files = _checkpoints(work)
        assert 1 <= len(files) <= 2, files
        for path in files:
            assert checkpoint_problem(str(path)) is None, (round_, path)
        ckpt = find_resume_checkpoint(str(work), logger=_quiet)
        assert ckpt is not None, f'round {round_}: nothing to resume; files {os.listdir(work)}'
        it = _iter_of(ckpt)
        assert it >= (resumed_iter or 1), (round_, ckpt, resumed_iter)
        resumed_iter = it

    assert inside_write >= 5, f'only {inside_write} of {KILLS} kills landed inside a write'
    log_path = tmp_path / 'final.log'
    proc = _train(work, resume=True, log_path=log_path, delay=0)
    assert proc.wait(timeout=300) == 0, log_path.read_text()[-3000:]
    log = log_path.read_text()
    assert f'resumed epoch: 0, iter: {resumed_iter}' in log
    assert f'Iter(train) [{MAX_ITERS}/{MAX_ITERS}]' in log
    final = work / f'iter_{MAX_ITERS}.pth'
    assert _checkpoints(work) == [final]
    assert _pointer(work) == str(final)
    assert not [n for n in os.listdir(work) if n.endswith('.tmp')]  # leftovers removed
    state = safe_torch_load(str(final))
    assert state['meta']['iter'] == MAX_ITERS
    # AdamW took exactly MAX_ITERS steps: every resume continued, none started over
    assert {float(s['step']) for s in state['optimizer']['state'].values()} == {float(MAX_ITERS)}


def _publish(src: Path, dst: Path, delay: float) -> subprocess.Popen:
    tool = REPO_ROOT / 'tools' / 'model_converters' / 'publish_mim_checkpoint.py'
    code = ('import runpy, sys, tests.slow_fsync; '
            f'sys.argv = [{str(tool)!r}, {str(src)!r}, {str(dst)!r}, "--force"]; '
            f'runpy.run_path({str(tool)!r}, run_name="__main__")')
    return subprocess.Popen([sys.executable, '-c', code], cwd=REPO_ROOT, env=_env(delay),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _training_checkpoint(path: Path, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = {'backbone.w': torch.randn(256, 256, generator=g),
             'head.fc.weight': torch.randn(8, 256, generator=g),
             'target_generator.x': torch.zeros(2)}
    torch.save({'state_dict': state, 'meta': {'iter': seed}, 'optimizer': {'lr': 0.1}}, path)
    return state


def test_converter_killed_mid_write_leaves_old_or_new(tmp_path) -> None:
    rng = random.Random(7)
    src_old, src_new, dst = tmp_path / 'iter_1.pth', tmp_path / 'iter_2.pth', tmp_path / 'published.pth'
    old = _training_checkpoint(src_old, 1)
    new = _training_checkpoint(src_new, 2)
    proc = _publish(src_old, dst, delay=0)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()

    def content() -> str:
        assert checkpoint_problem(str(dst)) is None, 'the destination is torn'
        got = torch.load(dst, weights_only=True)
        for name, ref in (('old', old), ('new', new)):
            if torch.equal(got['state_dict']['backbone.w'], ref['backbone.w']):
                assert got['meta']['iter'] == int(name == 'new') + 1
                return name
        raise AssertionError('the destination is neither the old nor the new file')

    outcomes = []
    for i in range(4):
        proc = _publish(src_new, dst, delay=0.4)
        if i < 3:  # inside the write: after the temporary file appears, before its rename
            assert _wait(proc, tmp_path, 'published', 1)
            time.sleep(rng.uniform(0, 0.3))
        else:  # any moment of the run
            time.sleep(rng.uniform(0, 3))
        proc.kill()
        proc.wait()
        outcomes.append(content())
    assert outcomes[:3] == ['old'] * 3, outcomes  # the rename never happened
    proc = _publish(src_new, dst, delay=0)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert content() == 'new'
    assert sorted(torch.load(dst, weights_only=True)['state_dict']) == ['backbone.w', 'head.fc.weight']
