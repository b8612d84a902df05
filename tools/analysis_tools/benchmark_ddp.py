"""Training throughput of one process against DDP through ``tools/dist_train.sh``.

Runs the same config through the real tools, as a user would, and reads the per-iteration
time that mmengine logs (``time``: from one iteration's end to the next, so data loading,
forward, backward, gradient all-reduce and the optimizer step are all in it):

    python tools/analysis_tools/benchmark_ddp.py CONFIG --procs 2 --iters 20 --warmup 5

Layouts measured (``--layouts``), each on the same per-process batch:

- ``1x1``: one process, one thread;
- ``1xN``: one process, N threads (N = ``--procs``), all cores in one process;
- ``Nx1``: N processes with one thread each, DDP over gloo (``tools/dist_train.sh``).

images/s = processes x per-process batch / median iteration time after the warm-up.
Prints a table and, with ``--out``, writes JSON. Not part of the test suite's timing.
Every run sets flush-to-zero as ``tools/train.py`` does; ``--no-flush-denormal`` is passed on.
"""
import argparse
import json
import os
import os.path as osp
import re
import statistics
import sys
import tempfile
from typing import Any, Dict, List, Mapping, Optional

from mmengine.config import Config

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# beitlab imports from this checkout
sys.path.insert(0, REPO_ROOT)

from beitlab.utils import experiments  # noqa: E402
from beitlab.utils.atomic_io import atomic_open  # noqa: E402
from beitlab.utils.benchmark import load_average  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.denormals import add_flush_denormal_arg  # noqa: E402
from beitlab.utils.runtime import ConfigOptionsAction, check_config_file  # noqa: E402

# mmengine's iteration line, e.g.
# "Iter(train) [ 7/25]  lr: 1.0e-03  eta: 0:00:10  time: 0.5123  data_time: 0.0101  loss: ..."
ITER_LINE = re.compile(r'Iter\(train\)\s*\[\s*(\d+)/\s*(\d+)\].*?\stime:\s*([0-9.]+)'
                       r'\s+data_time:\s*([0-9.]+)')


def parse_iteration_times(log: str) -> Dict[int, tuple]:
    """``{iteration: (time, data_time)}`` from mmengine's training log lines."""
    times = {}
    for match in ITER_LINE.finditer(log):
        times[int(match.group(1))] = (float(match.group(3)), float(match.group(4)))
    return times


def iteration_config(config: str, iters: int, work_dir: str) -> str:
    """A config inheriting ``config`` that trains ``iters`` iterations whatever its loop
    (epoch-based recipes included) without learning-rate schedulers (they do not change
    the speed, and epoch-based ones need an epoch loop)."""
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, 'benchmark_ddp_config.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{osp.abspath(config)!r}]\n'
                f"train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={iters})\n"
                'param_scheduler = []\n'
                'val_cfg = None\nval_dataloader = None\nval_evaluator = None\n')
    return path


def run_layout(config: str, procs: int, threads: int, iters: int, warmup: int,
               cfg_options: Mapping[str, Any], work_dir: str,
               flush_denormal: bool = True) -> Dict[str, Any]:
    """Train ``warmup + iters`` iterations with ``procs`` processes of ``threads`` threads
    (with ``--no-flush-denormal`` unless ``flush_denormal``)."""
    total = warmup + iters
    options = {'default_hooks.logger.interval': 1,
               'log_processor.window_size': 1, 'log_processor.by_epoch': False,
               'default_hooks.checkpoint.interval': total + 1,
               'default_hooks.checkpoint.by_epoch': False, **cfg_options}
    run = experiments.train(iteration_config(config, total, work_dir), work_dir, options,
                            extra_args=[] if flush_denormal else ['--no-flush-denormal'],
                            nproc=procs, threads=threads)
    with open(run.log_file, errors='replace') as f:
        times = parse_iteration_times(f.read())
    timed = [times[i] for i in range(warmup + 1, total + 1) if i in times]
    if len(timed) < iters:
        raise RuntimeError(f'expected {iters} logged iterations after {warmup} warm-up ones '
                           f'in {run.log_file}, found {len(timed)}')
    return dict(procs=procs, threads=threads,
                median_s=statistics.median(t for t, _ in timed),
                median_data_s=statistics.median(d for _, d in timed),
                iter_times_s=[t for t, _ in timed])


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--procs', type=int, default=2, help='N: processes (and threads)')
    parser.add_argument('--layouts', default='1x1,1xN,Nx1',
                        help='comma-separated subset of 1x1, 1xN, Nx1')
    parser.add_argument('--iters', type=int, default=20, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=5, help='untimed first iterations')
    parser.add_argument('--work-dir', help='where the runs write (default: a temp dir)')
    parser.add_argument('--out', help='write the results as JSON to this file')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction, default={},
                        help='passed to every run, e.g. train_dataloader.batch_size=32')
    add_flush_denormal_arg(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    if args.procs < 2:
        raise ValueError(f'--procs must be at least 2 to compare with DDP, got {args.procs}')
    known = {'1x1': (1, 1), '1xN': (1, args.procs), 'Nx1': (args.procs, 1)}
    layouts = args.layouts.split(',')
    unknown = [name for name in layouts if name not in known]
    if unknown:
        raise ValueError(f'unknown --layouts {unknown}; choose from {sorted(known)}')
    check_config_file(args.config)
    cfg = Config.fromfile(args.config, import_custom_modules=False)
    # The overrides every run gets, parsed as tools/train.py parses them.
    cfg.merge_from_dict(args.cfg_options)
    batch = cfg.train_dataloader.batch_size

    work_root = args.work_dir or tempfile.mkdtemp(prefix='benchmark_ddp_')
    results = {'config': args.config, 'batch_per_process': batch,
               'flush_denormal': args.flush_denormal,
               'load_before': load_average(), 'runs': {}}
    for name in layouts:
        procs, threads = known[name]
        run = run_layout(args.config, procs, threads, args.iters, args.warmup,
                         args.cfg_options, osp.join(work_root, name), args.flush_denormal)
        run['images_per_s'] = procs * batch / run['median_s']
        results['runs'][name.replace('N', str(args.procs))] = run
    results['load_after'] = load_average()

    print(f'config {args.config}  batch {batch} per process  {args.iters} timed iterations '
          f'after {args.warmup}  load {results["load_before"]} -> {results["load_after"]}')
    print(f'{"layout":<26}{"s/iter":>9}{"data s":>9}{"images/s":>10}')
    for name, run in results['runs'].items():
        label = f'{run["procs"]} proc x {run["threads"]} thread' + (
            ' (DDP)' if run['procs'] > 1 else '')
        print(f'{label:<26}{run["median_s"]:>9.3f}{run["median_data_s"]:>9.3f}'
              f'{run["images_per_s"]:>10.2f}')
    names = list(results['runs'])
    for i, name in enumerate(names):
        for other in names[:i]:
            ratio = (results['runs'][name]['images_per_s']
                     / results['runs'][other]['images_per_s'])
            results.setdefault('ratios', {})[f'{name}/{other}'] = ratio
            print(f'{name} / {other}: {ratio:.2f}x images/s')
    if args.out:
        with atomic_open(args.out, 'w') as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    run_cli(main)
