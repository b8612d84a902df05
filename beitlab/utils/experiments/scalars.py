"""Read what a run logged: mmengine's ``vis_data/scalars.json`` and ``tools/test.py``'s metrics.

``tools/train.py`` writes each run into ``<work_dir>/<timestamp>/``; mmengine's
``LocalVisBackend`` appends one JSON object per line to ``vis_data/scalars.json`` in it:
training entries (``loss``, ``lr``, ... with ``iter`` and ``step`` = iteration), validation
entries (the metrics, ``step`` = the iteration of the validation when the logger hook has
``log_metric_by_epoch=False``) and hook entries such as ``knn/top1_*``.

A resumed run starts a new timestamp folder, whose log says ``resumed epoch: E, iter: I``.
:func:`read_scalars` on a work dir therefore reads the newest run and, when it resumed
from iteration ``I``, the entries up to ``I`` of the run before it (and so on back): one
history, in which a fresh start in the same work dir hides the older runs.
"""
import glob
import json
import math
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

__all__ = ['MetricRecord', 'ScalarLog', 'TEST_METRICS_FILE', 'find_run_dirs', 'read_scalars',
           'read_scalars_file', 'read_test_metrics']

# tools/test.py writes its metrics here, in its --work-dir.
TEST_METRICS_FILE = 'metrics.json'
SCALARS_FILE = osp.join('vis_data', 'scalars.json')
_RESUMED = re.compile(r'resumed epoch: (\d+), iter: (\d+)')
_POSITION_KEYS = ('step', 'iter', 'epoch')


@dataclass(frozen=True)
class MetricRecord:
    """One logged entry: its numeric values and where in training it was logged.

    Attributes:
        values: every numeric key of the entry except the position keys below.
        step: mmengine's ``step`` (``None`` for ``tools/test.py`` metrics).
        iteration: ``iter`` of a training entry (``None`` for validation and hook entries).
        epoch: ``epoch`` when logged.
        source: ``file:line`` the entry was read from.
    """

    values: Mapping[str, float]
    step: Optional[int] = None
    iteration: Optional[int] = None
    epoch: Optional[int] = None
    source: str = ''

    def __getitem__(self, key: str) -> float:
        if key not in self.values:
            raise KeyError(f'{self.source} has no {key!r}; it has {sorted(self.values)}')
        return self.values[key]

    def __contains__(self, key: object) -> bool:
        return key in self.values


@dataclass(frozen=True)
class ScalarLog:
    """The entries of one run history, in the order they were logged.

    Attributes:
        records: the entries.
        files: the ``scalars.json`` files they came from, oldest first.
    """

    records: Tuple[MetricRecord, ...]
    files: Tuple[str, ...] = field(default=())

    def __iter__(self) -> Iterator[MetricRecord]:
        return iter(self.records)

    def keys(self) -> List[str]:
        """Every value key logged, sorted."""
        return sorted({k for r in self.records for k in r.values})

    def with_key(self, key: str) -> List[MetricRecord]:
        """The entries that logged ``key``; a ``KeyError`` naming the keys found if none."""
        found = [r for r in self.records if key in r.values]
        if not found:
            raise KeyError(f'{", ".join(self.files) or "the log"} has no {key!r} entries; '
                           f'keys logged: {self.keys()}')
        return found

    def curve(self, key: str) -> Dict[int, float]:
        """``{step: value}`` of ``key``, in step order; a step logged twice (a rollback)
        keeps the later value."""
        values = {r.step: r.values[key] for r in self.with_key(key)}
        return {s: values[s] for s in sorted(values)}

    def last(self, key: str) -> MetricRecord:
        """The last entry that logged ``key`` (e.g. the final validation)."""
        return self.with_key(key)[-1]


def _record(entry: dict, source: str) -> MetricRecord:
    def position(key: str) -> Optional[int]:
        value = entry.get(key)
        return None if value is None else int(value)

    values = {k: float(v) for k, v in entry.items() if k not in _POSITION_KEYS
              and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return MetricRecord(values=values, step=position('step'), iteration=position('iter'),
                        epoch=position('epoch'), source=source)


def read_scalars_file(path: str) -> List[MetricRecord]:
    """The entries of one JSON-lines file (mmengine's ``scalars.json``).

    An unterminated last line that does not parse (a run killed while writing, or still
    writing) is left out; any other line that is not a JSON object with a ``step`` is a
    ``ValueError`` naming ``path:line``.
    """
    with open(path) as f:
        lines = f.read().split('\n')
    records = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            if lineno == len(lines):  # no newline after it: a write still under way
                continue
            raise ValueError(f'{path}:{lineno}: not a JSON line ({err.msg})') from None
        if not isinstance(entry, dict) or 'step' not in entry:
            raise ValueError(f'{path}:{lineno}: expected a JSON object with a "step" (an mmengine '
                             f'scalars.json line), got {line[:80]!r}')
        records.append(_record(entry, f'{path}:{lineno}'))
    return records


def find_run_dirs(work_dir: str) -> List[str]:
    """The ``<timestamp>`` folders of ``work_dir`` that hold a ``vis_data/scalars.json``,
    oldest first (mmengine's timestamps, ``%Y%m%d_%H%M%S``, sort by name)."""
    return sorted(osp.dirname(osp.dirname(p))
                  for p in glob.glob(osp.join(glob.escape(work_dir), '*', SCALARS_FILE)))


def _resumed_iteration(run_dir: str) -> Optional[int]:
    """The iteration the run in ``run_dir`` resumed from, read from its text log."""
    for log in sorted(glob.glob(osp.join(glob.escape(run_dir), '*.log'))):
        with open(log, errors='replace') as f:
            for line in f:
                match = _RESUMED.search(line)
                if match:
                    return int(match.group(2))
    return None


def read_scalars(path: str) -> ScalarLog:
    """The logged entries of a work dir, one run dir, or one ``scalars.json`` file.

    For a work dir: the newest run, preceded by the part of each earlier run that it
    resumed from (entries with ``step`` up to the resumed iteration; see the module
    docstring).

    Raises:
        FileNotFoundError: nothing logged under ``path``.
        ValueError: a malformed line (see :func:`read_scalars_file`).
    """
    if osp.isfile(path):
        return ScalarLog(tuple(read_scalars_file(path)), (path,))
    if osp.isfile(osp.join(path, SCALARS_FILE)):
        run_dirs = [path]
    else:
        run_dirs = find_run_dirs(path)
    if not run_dirs:
        raise FileNotFoundError(f'no <timestamp>/{SCALARS_FILE} under {path!r}: give a work dir of '
                                'tools/train.py (did the run log anything?) or a scalars.json file')
    chain: List[Tuple[str, float]] = [(run_dirs[-1], math.inf)]
    cutoff = math.inf
    for earlier in reversed(run_dirs[:-1]):
        resumed = _resumed_iteration(chain[0][0])
        if resumed is None:
            break
        cutoff = min(cutoff, resumed)
        chain.insert(0, (earlier, cutoff))
    records: List[MetricRecord] = []
    files = []
    for run_dir, last_step in chain:
        scalars = osp.join(run_dir, SCALARS_FILE)
        files.append(scalars)
        records += [r for r in read_scalars_file(scalars) if r.step <= last_step]
    return ScalarLog(tuple(records), tuple(files))


def read_test_metrics(work_dir: str) -> MetricRecord:
    """The metrics ``tools/test.py --work-dir WORK_DIR`` wrote (``WORK_DIR/metrics.json``).

    Raises:
        FileNotFoundError: no metrics file (the test did not finish).
        ValueError: the file is not a JSON object.
    """
    path = osp.join(work_dir, TEST_METRICS_FILE)
    if not osp.isfile(path):
        raise FileNotFoundError(f'no {TEST_METRICS_FILE} in {work_dir!r}: did tools/test.py '
                                f'--work-dir {work_dir} finish?')
    with open(path) as f:
        try:
            entry = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path}: not JSON ({err.msg})') from None
    if not isinstance(entry, dict):
        raise ValueError(f'{path}: expected a JSON object of metrics, got {type(entry).__name__}')
    return _record(entry, path)
