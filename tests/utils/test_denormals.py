"""Flush-to-zero in every intra-op thread (beitlab.utils.denormals), checked in fresh
processes with 2 intra-op threads by the probe itself: one subnormal product per element,
each thread's share read back as bits. Nothing here is timed."""
import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from tests.tools_helpers import REPO_ROOT, run_tool

THREADS = 2
SHARE = 4 * 32768  # elements per thread in subnormal_survivors()
X86 = platform.machine().lower() in {'x86_64', 'amd64', 'i386', 'i686'}
needs_ftz = pytest.mark.skipif(not X86, reason='flush-to-zero/denormals-are-zero is an x86 '
                               'MXCSR mode; torch.set_flush_denormal supports x86 only')

# argv[1]: 'pool' runs a parallel op first, so the OpenMP workers exist before start-up
# (their MXCSR is no longer inherited); argv[2:]: the tool's command-line flags.
SCRIPT = textwrap.dedent('''
    import argparse, json, sys
    import torch
    torch.set_num_threads({threads})
    if sys.argv[1] == 'pool':
        torch.ones(1 << 20).mul(2)
    from beitlab.utils.denormals import (add_flush_denormal_arg, setup_flush_denormal,
                                         subnormal_survivors)
    parser = argparse.ArgumentParser()
    add_flush_denormal_arg(parser)
    status = setup_flush_denormal(parser.parse_args(sys.argv[2:]).flush_denormal)
    print(json.dumps(dict(threads=torch.get_num_threads(), holds=status.holds,
                          message=status.message, survivors=subnormal_survivors())))
''').format(threads=THREADS)


def run_python(code: str, *args: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS),
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run([sys.executable, '-c', code, *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['threads'] == THREADS and len(result['survivors']) == THREADS, result
    return result


@needs_ftz
@pytest.mark.parametrize('pool', ['pool', 'no-pool'])
def test_startup_flushes_in_every_thread(pool: str) -> None:
    """Whether or not the intra-op pool existed at start-up, no thread's share keeps a
    subnormal."""
    result = run_python(SCRIPT, pool)
    assert result['survivors'] == [0] * THREADS, result
    assert result['holds'] and result['message'].startswith('flush-to-zero: on'), result


@pytest.mark.parametrize('pool', ['pool', 'no-pool'])
def test_no_flush_denormal_keeps_subnormals_in_every_thread(pool: str) -> None:
    result = run_python(SCRIPT, pool, '--no-flush-denormal')
    assert result['survivors'] == [SHARE] * THREADS, result
    assert not result['holds'] and 'off (--no-flush-denormal)' in result['message'], result


@needs_ftz
def test_torch_set_flush_denormal_alone_misses_existing_workers() -> None:
    """The probe tells the threads apart: ``torch.set_flush_denormal`` after the pool exists
    reaches the main thread's share (the first) and not the worker's."""
    code = textwrap.dedent(f'''
        import json, torch
        torch.set_num_threads({THREADS})
        torch.ones(1 << 20).mul(2)
        from beitlab.utils.denormals import flush_to_zero_holds, subnormal_survivors
        torch.set_flush_denormal(True)
        print(json.dumps(dict(threads=torch.get_num_threads(), holds=flush_to_zero_holds(),
                              survivors=subnormal_survivors())))
    ''')
    result = run_python(code)
    assert result['survivors'] == [0] + [SHARE] * (THREADS - 1), result
    assert not result['holds']


def test_train_logs_the_flush_to_zero_line(tmp_path) -> None:
    on = run_tool('train.py', 'tests/data/configs/toy_regression.py', '--work-dir',
                  tmp_path / 'on', env=dict(OMP_NUM_THREADS=str(THREADS)))
    expected = 'flush-to-zero: on' if X86 else 'flush-to-zero: not available'
    assert expected in on.stdout + on.stderr, on.stdout[-2000:]
    off = run_tool('train.py', 'tests/data/configs/toy_regression.py', '--work-dir',
                   tmp_path / 'off', '--no-flush-denormal')
    assert 'flush-to-zero: off' in off.stdout + off.stderr, off.stdout[-2000:]
