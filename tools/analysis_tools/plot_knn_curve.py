"""Plot the k-NN top-1 curves that KNNMonitorHook logged, to a PNG.

    python tools/analysis_tools/plot_knn_curve.py RUN [RUN ...] --out docs/images/knn_curve.png \
        [--keys knn/top1_layer6] [--labels BEiT MAE] [--force]
    # any other logged metric, e.g. the test-set top-1 of a fine-tuning run with validation
    python tools/analysis_tools/plot_knn_curve.py WORK_DIR --keys accuracy/top1 --scale 1 \
        --ylabel 'top-1 (%)' --title 'fine-tuning' --out curve.png

Each RUN is a work dir (its newest ``<timestamp>/vis_data/scalars.json``, joined to the
runs it resumed from: ``beitlab.utils.experiments.read_scalars``) or a json log file itself.
Every ``knn/top1_*`` key found (or those of ``--keys``) becomes one line, accuracy against
iteration; a rollback that logs a step twice keeps the last value. The points are printed
as a table too.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.utils.atomic_io import atomic_savefig, check_output_path  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.experiments import ScalarLog, read_scalars  # noqa: E402

KNN_PREFIX = 'knn/top1_'


def load_knn_curves(log: ScalarLog, keys: Optional[Sequence[str]] = None) -> Dict[str, Dict[int, float]]:
    """``{key: {step: accuracy}}`` of the ``knn/top1_*`` entries (or ``keys``) of a run."""
    found = [k for k in log.keys() if ((k in keys) if keys else k.startswith(KNN_PREFIX))]
    if not found:
        wanted = ', '.join(keys) if keys else f'{KNN_PREFIX}*'
        raise KeyError(f'{", ".join(log.files)} has no {wanted} entries: was KNNMonitorHook in '
                       'the config\'s custom_hooks?')
    return {key: log.curve(key) for key in found}


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('runs', nargs='+', help='work dirs or json log files')
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--keys', nargs='+', help='keys to plot (default: every knn/top1_*)')
    parser.add_argument('--labels', nargs='+', help='one name per run (default: the paths)')
    parser.add_argument('--title', default='k-NN top-1 (k=20, T=0.07) during pre-training')
    parser.add_argument('--scale', type=float, default=100.,
                        help='factor from the logged value to the plotted one (100: the k-NN '
                        'hook logs fractions; 1 for metrics already in percent)')
    parser.add_argument('--ylabel', default='k-NN top-1 (%)')
    parser.add_argument('--force', action='store_true', help='replace an existing --out')
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.runs):
        raise ValueError(f'--labels has {len(args.labels)} names for {len(args.runs)} runs')
    logs = [read_scalars(run) for run in args.runs]
    check_output_path(args.out, [f for log in logs for f in log.files], force=args.force)
    labels = args.labels or [osp.basename(osp.normpath(run)) for run in args.runs]

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    rows: List[str] = []
    for label, log in zip(labels, logs):
        for key, curve in sorted(load_knn_curves(log, args.keys).items()):
            steps = sorted(curve)
            short = key[len('knn/'):] if key.startswith('knn/') else key
            name = f'{label} {short}' if len(logs) > 1 else short
            ax.plot(steps, [args.scale * curve[s] for s in steps], marker='o', markersize=3,
                    label=name)
            rows += [f'{name}\t{s}\t{curve[s]:.4f}' for s in steps]
    ax.set_xlabel('iteration')
    ax.set_ylabel(args.ylabel)
    ax.set_title(args.title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, args.out)
    plt.close(fig)
    print('curve\titeration\ttop1')
    print('\n'.join(rows))
    print(f'saved {args.out}')


if __name__ == '__main__':
    run_cli(main)
