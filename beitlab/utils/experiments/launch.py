"""Launch ``tools/train.py`` and ``tools/test.py`` as a user would, from experiment scripts.

Every run is a subprocess of ``sys.executable`` (``tools/dist_train.sh`` for several
processes) started in the repository root, so the configs' relative data roots mean what
they mean on the command line; the work dir, log file and checkpoint are made absolute
first, so the caller reads back what the run wrote. The config options travel as
``--cfg-options KEY=VALUE`` words that ``tools/train.py`` parses back to the very values
given (checked before launching), so the log's first line is a command one can rerun.
"""
import json
import os
import os.path as osp
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..cli import HintedError
from ..resume import find_resume_checkpoint
from ..runtime import ConfigOptionsAction, find_free_port
from .scalars import MetricRecord, ScalarLog, read_scalars, read_test_metrics

__all__ = ['LaunchError', 'RunResult', 'REPO_ROOT', 'cfg_option_words', 'final_checkpoint',
           'seed_options', 'test', 'train']

# The checkout this package lives in: tools/ is not installed with the package.
REPO_ROOT = str(Path(__file__).resolve().parents[3])
LOG_TAIL_LINES = 20


class LaunchError(HintedError, RuntimeError):
    """A tool exited with a non-zero status; the message names the command, the status and
    the log, and the hints are the last lines of the log."""

    def __init__(self, command: Sequence[str], returncode: int, log_file: str) -> None:
        self.command, self.returncode, self.log_file = list(command), returncode, log_file
        with open(log_file, errors='replace') as f:
            tail = [line.rstrip() for line in f if line.strip()][-LOG_TAIL_LINES:]
        super().__init__(f'{shlex.join(self.command)} exited with {returncode}; the last lines '
                         f'of its log {log_file}:', tail)


@dataclass(frozen=True)
class RunResult:
    """A finished run of ``tools/train.py`` or ``tools/test.py``.

    Attributes:
        command: the command that ran (the first line of ``log_file`` too).
        work_dir: its ``--work-dir`` (absolute).
        log_file: its stdout and stderr.
        seconds: wall-clock time.
        metrics: ``tools/test.py``'s metrics (``None`` for training).
    """

    command: Tuple[str, ...]
    work_dir: str
    log_file: str
    seconds: float
    metrics: Optional[MetricRecord] = None

    def scalars(self) -> ScalarLog:
        """What the run logged (:func:`~beitlab.utils.experiments.read_scalars`)."""
        return read_scalars(self.work_dir)

    def checkpoint(self) -> str:
        """The newest intact checkpoint the run left (:func:`final_checkpoint`)."""
        return final_checkpoint(self.work_dir)


def final_checkpoint(work_dir: str) -> str:
    """The newest intact checkpoint of ``work_dir`` (``last_checkpoint``, else the newest
    ``iter_*.pth`` / ``epoch_*.pth``); ``FileNotFoundError`` when there is none."""
    ckpt = find_resume_checkpoint(work_dir)
    if ckpt is None:
        raise FileNotFoundError(f'no intact checkpoint in {work_dir!r} (last_checkpoint, '
                                'iter_*.pth or epoch_*.pth): did training finish?')
    return ckpt


def seed_options(seed: int, deterministic: Optional[bool] = None) -> Dict[str, Any]:
    """The cfg-options of mmengine's ``randomness``: the seed, and cudnn determinism when
    ``deterministic`` is given (``None`` keeps the config's)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f'seed must be a non-negative int, got {seed!r}')
    options: Dict[str, Any] = {'randomness.seed': seed}
    if deterministic is not None:
        options['randomness.deterministic'] = bool(deterministic)
    return options


def _literal(value: Any) -> str:
    """``value`` as text ``ConfigOptionsAction`` reads back: dicts as ``dict(k=v)``, strings
    in double quotes (which the shell's single quotes around the word leave alone)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and k.isidentifier() for k in value):
            return 'dict(' + ', '.join(f'{k}={_literal(v)}' for k, v in value.items()) + ')'
        return '{' + ', '.join(f'{_literal(k)}: {_literal(v)}' for k, v in value.items()) + '}'
    if isinstance(value, list):
        return '[' + ', '.join(_literal(v) for v in value) + ']'
    if isinstance(value, tuple):
        return '(' + ', '.join(_literal(v) for v in value) + (',)' if len(value) == 1 else ')')
    return repr(value)


def _same(parsed: Any, value: Any) -> bool:
    """``parsed`` equals ``value`` with the same types throughout (``1`` is not ``1.0`` nor
    ``'1'``, a tuple is not a list)."""
    if isinstance(value, Mapping):
        return isinstance(parsed, Mapping) and list(parsed) == list(value) and all(
            _same(parsed[k], v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(parsed) is type(value) and len(parsed) == len(value) and all(
            _same(p, v) for p, v in zip(parsed, value))
    return type(parsed) is type(value) and parsed == value


def cfg_option_words(options: Mapping[str, Any]) -> List[str]:
    """``['KEY=VALUE', ...]`` for ``--cfg-options``, each of which ``tools/train.py`` parses
    back to the value given.

    Raises:
        ValueError: a value that would not survive the trip (e.g. a string with spaces or
            commas, or one that reads as a number or ``None``).
    """
    words = []
    for key, value in options.items():
        text = value if isinstance(value, str) else _literal(value)
        try:
            parsed = ConfigOptionsAction.parse_value(key, text)
        except ValueError as err:
            parsed = err
        if not _same(parsed, value):
            raise ValueError(f'cfg option {key}={value!r} would reach tools/train.py as '
                             f'{parsed!r}; give a value the command line carries (no spaces or '
                             f'commas in strings, numbers as numbers)')
        words.append(f'{key}={text}')
    return words


def _config_path(config: str) -> str:
    """``config`` made absolute when it exists from the caller's directory; otherwise as
    given, to be read from the repository root (where the configs/ paths point)."""
    return osp.abspath(config) if osp.isfile(config) else config


def _launch(command: List[str], work_dir: str, log_file: str, threads: Optional[int],
            env: Optional[Mapping[str, str]], echo: bool) -> Tuple[Tuple[str, ...], str, str, float]:
    """Run ``command`` from the repository root with its output in ``log_file``; returns
    ``(command, work_dir, log_file, seconds)`` with the paths absolute."""
    work_dir, log_file = osp.abspath(work_dir), osp.abspath(log_file)
    os.makedirs(osp.dirname(log_file), exist_ok=True)
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = os.pathsep.join(
        [REPO_ROOT, full_env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    if threads is not None:
        full_env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    full_env.update(env or {})
    start = time.time()
    with open(log_file, 'w') as log:
        log.write(f'$ {shlex.join(command)}\n')
        log.flush()
        if echo:
            print(f'$ {shlex.join(command)}', flush=True)
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=full_env, text=True,
                                errors='replace', stderr=subprocess.STDOUT,
                                stdout=subprocess.PIPE if echo else log)
        if echo:
            for line in proc.stdout:
                log.write(line)
                sys.stdout.write(line)
        returncode = proc.wait()
    if returncode != 0:
        raise LaunchError(command, returncode, log_file)
    return tuple(command), work_dir, log_file, time.time() - start


def _tool(name: str) -> str:
    path = osp.join(REPO_ROOT, 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist: the experiment launcher runs the tools of '
                                'a source checkout (git clone, then pip install -e .)')
    return path


def train(config: str, work_dir: str, cfg_options: Optional[Mapping[str, Any]] = None, *,
          seed: Optional[int] = None, deterministic: Optional[bool] = None,
          extra_args: Sequence[str] = (), nproc: int = 1, threads: Optional[int] = None,
          log_file: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
          echo: bool = False) -> RunResult:
    """Run ``tools/train.py CONFIG --work-dir WORK_DIR [extra_args] --cfg-options ...``.

    Args:
        config: config path (from the caller's directory or the repository root).
        work_dir: where the run writes (made absolute).
        cfg_options: ``{key: value}`` merged into the config as ``--cfg-options`` merges
            them (a dict value is merged into the dict at its key, a list replaces).
        seed: ``randomness.seed`` (:func:`seed_options`); ``None`` keeps the config's.
        deterministic: ``randomness.deterministic``; ``None`` keeps the config's.
        extra_args: more ``tools/train.py`` arguments, e.g. ``['--amp']``.
        nproc: processes; more than one runs ``tools/dist_train.sh`` (DDP) on a free port.
        threads: ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` of the run.
        log_file: where stdout and stderr go (default ``WORK_DIR/train.log``).
        env: more environment variables.
        echo: also print the command and the run's output.

    Raises:
        LaunchError: the tool exited with a non-zero status.
        ValueError: a cfg option the command line cannot carry, or ``seed`` together with
            a ``randomness`` cfg option.
    """
    options = dict(cfg_options or {})
    if seed is not None or deterministic is not None:
        clash = sorted(k for k in options if k == 'randomness' or k.startswith('randomness.'))
        if clash:
            raise ValueError(f'seed/deterministic and the cfg options {clash} both set '
                             'randomness; give the seed one way')
        options.update(seed_options(seed, deterministic) if seed is not None
                       else {'randomness.deterministic': bool(deterministic)})
    config = _config_path(config)
    if nproc > 1:
        env = dict(env or {}, PORT=str(find_free_port()), PYTHON=sys.executable)
        command = ['bash', _tool('dist_train.sh'), config, str(nproc)]
    else:
        command = [sys.executable, _tool('train.py'), config]
    command += ['--work-dir', osp.abspath(work_dir), *extra_args]
    if options:
        command += ['--cfg-options', *cfg_option_words(options)]
    log_file = log_file or osp.join(work_dir, 'train.log')
    return RunResult(*_launch(command, work_dir, log_file, threads, env, echo))


def test(config: str, checkpoint: str, work_dir: str,
         cfg_options: Optional[Mapping[str, Any]] = None, *, extra_args: Sequence[str] = (),
         threads: Optional[int] = None, log_file: Optional[str] = None,
         env: Optional[Mapping[str, str]] = None, echo: bool = False) -> RunResult:
    """Run ``tools/test.py CONFIG CHECKPOINT --work-dir WORK_DIR [extra_args] --cfg-options ...``
    and read its metrics (``RunResult.metrics``).

    Arguments as for :func:`train` (``extra_args`` e.g. ``['--out', 'preds.pkl']``); the log
    defaults to ``WORK_DIR/test.log``.

    Raises:
        LaunchError: the tool exited with a non-zero status.
    """
    if '://' not in checkpoint:
        checkpoint = osp.abspath(checkpoint)
    command = [sys.executable, _tool('test.py'), _config_path(config), checkpoint,
               '--work-dir', osp.abspath(work_dir), *extra_args]
    if cfg_options:
        command += ['--cfg-options', *cfg_option_words(cfg_options)]
    run = _launch(command, work_dir, log_file or osp.join(work_dir, 'test.log'), threads, env, echo)
    return RunResult(*run, metrics=read_test_metrics(run[1]))
