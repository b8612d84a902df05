"""Run the repository's tools as a user would: ``python tools/<name>.py ...``."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
# 500 training and 250 test images of Fashion-MNIST in the official idx files
# (tests/data/fashion_mnist/README.md): every test that needs real items reads these.
FASHION_MNIST_SUBSET = REPO_ROOT / 'tests' / 'data' / 'fashion_mnist'


def _tail(text: str, lines: int) -> str:
    """The last ``lines`` lines of ``text`` without Python's warning chatter."""
    kept = [line for line in text.splitlines()
            if 'warnings.warn(' not in line and 'UserWarning' not in line]
    return '\n'.join(kept[-lines:])


def run_tool(tool: str, *args: str, env: Optional[Dict[str, str]] = None,
             timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``tools/<tool>`` (a .py file with the interpreter, a .sh file with bash)
    from the repository root; on failure the assertion shows the tool's output."""
    path = REPO_ROOT / 'tools' / tool
    cmd: Sequence[str] = (['bash', str(path)] if tool.endswith('.sh')
                          else [sys.executable, str(path)])
    full_env = dict(os.environ)
    # Tests may import helper modules from tests/ through custom_imports.
    full_env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO_ROOT), full_env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    full_env.setdefault('OMP_NUM_THREADS', '1')
    full_env.update(env or {})
    proc = subprocess.run([*cmd, *map(str, args)], cwd=REPO_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        # stderr first and only the last lines of each stream: CI reports show the
        # start of a failure message, and the cause is at the end of stderr.
        raise AssertionError(f'{" ".join(cmd)} {" ".join(map(str, args))} exited with '
                             f'{proc.returncode}\n--- stderr (last 40 lines) ---\n'
                             f'{_tail(proc.stderr, 40)}\n--- stdout (last 20 lines) ---\n'
                             f'{_tail(proc.stdout, 20)}')
    return proc
