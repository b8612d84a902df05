"""Pre-trained against random init over seeds: the summary table and the curves that the
dense-transfer scripts share. A result is a dict with ``run`` (``'pretrained'`` or
``'scratch'``), ``seed``, the metric values and, optionally, ``curve`` (``{str(step): value}``
of the validation metric)."""
from typing import List, Sequence

import numpy as np

from ..atomic_io import atomic_savefig
from .stats import mean_std_text

RUNS = ('pretrained', 'scratch')


def seed_summary(results: Sequence[dict], metrics: Sequence[str]) -> List[str]:
    """Markdown lines: mean ± sample std of each metric per init over its seeds, then the
    gap (pre-trained minus random init) paired by seed; no lines unless some init has two
    seeds or more."""
    by_run = {run: {r.get('seed'): r for r in results if r['run'] == run} for run in RUNS}
    if max(len(v) for v in by_run.values()) < 2:
        return []
    lines = [f'| over seeds | seeds | {" | ".join(metrics)} |', '|---|---|' + '---|' * len(metrics)]
    for run, per_seed in by_run.items():
        if per_seed:
            lines.append(f'| {run} | {len(per_seed)} | ' + ' | '.join(
                mean_std_text([r[m] for r in per_seed.values()]) for m in metrics) + ' |')
    paired = sorted(set(by_run['pretrained']) & set(by_run['scratch']), key=str)
    if paired:
        lines.append(f'| gap, paired | {len(paired)} | ' + ' | '.join(mean_std_text(
            [by_run['pretrained'][s][m] - by_run['scratch'][s][m] for s in paired], signed=True)
            for m in metrics) + ' |')
    return lines


def draw_seed_curves(results: Sequence[dict], path: str, ylabel: str) -> None:
    """The validation curve of every run against iteration: a thin line per seed, the mean
    over the seeds' common steps bold, one colour per init."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for run, colour in zip(RUNS, ('tab:blue', 'tab:orange')):
        curves = [r['curve'] for r in results if r['run'] == run and r.get('curve')]
        if not curves:
            continue
        steps = sorted(set.intersection(*(set(map(int, c)) for c in curves)))
        for c in curves:
            ax.plot(sorted(map(int, c)), [c[str(k)] for k in sorted(map(int, c))],
                    color=colour, alpha=0.3, lw=1)
        ax.plot(steps, [np.mean([c[str(k)] for c in curves]) for k in steps], color=colour,
                lw=2, marker='o', ms=3, label=f'{run} (mean of {len(curves)})')
    ax.set_xlabel('iteration')
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
