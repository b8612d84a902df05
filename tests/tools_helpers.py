"""Run the repository's tools as a user would: ``python tools/<name>.py ...``."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]


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
        raise AssertionError(f'{" ".join(cmd)} {" ".join(map(str, args))} exited with '
                             f'{proc.returncode}\n--- stdout ---\n{proc.stdout[-6000:]}'
                             f'\n--- stderr ---\n{proc.stderr[-6000:]}')
    return proc
