"""Compare the loss curves of training runs (e.g. fp32 vs bf16) against seed-to-seed noise.

    python tools/analysis_tools/compare_loss_curves.py REF_WORK_DIR OTHER_WORK_DIR \
        [--noise NOISE_WORK_DIR] [--key loss] [--skip 10]

Reads each run's ``<work_dir>/<timestamp>/vis_data/scalars.json`` (mmengine's
LocalVisBackend; a resumed run together with the run it resumed, see
``beitlab.utils.experiments.read_scalars``; log with ``default_hooks.logger.interval=1``
and ``log_processor.window_size=1`` for per-iteration values) and prints the mean
absolute difference of ``--key`` over the common iterations (after ``--skip``),
and the same for REF vs the noise run (same precision, another seed). "Within
noise" means the first figure is not larger than the second.
"""
import argparse
import os.path as osp
import sys
from typing import Optional

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.experiments import read_scalars  # noqa: E402


def load_curve(work_dir: str, key: str) -> dict[int, float]:
    """``{iteration: value}`` of ``key`` in the run history of ``work_dir``."""
    return read_scalars(work_dir).curve(key)


def mean_abs_diff(a: dict[int, float], b: dict[int, float], skip: int) -> tuple[float, int]:
    steps = sorted(s for s in set(a) & set(b) if s > skip)
    if not steps:
        raise ValueError('the runs share no logged iteration after --skip')
    return sum(abs(a[s] - b[s]) for s in steps) / len(steps), len(steps)


def main(argv: Optional[list[str]] = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('ref')
    parser.add_argument('other')
    parser.add_argument('--noise', help='a run like REF with another seed')
    parser.add_argument('--key', default='loss')
    parser.add_argument('--skip', type=int, default=0, help='ignore iterations <= this')
    args = parser.parse_args(argv)
    ref, other = load_curve(args.ref, args.key), load_curve(args.other, args.key)
    d, n = mean_abs_diff(ref, other, args.skip)
    last = max(set(ref) & set(other))
    out = dict(mean_abs_diff=d, iterations=n, ref_last=ref[last], other_last=other[last])
    print(f'{args.key}: mean |ref - other| = {d:.4f} over {n} iterations; at iteration '
          f'{last}: ref {ref[last]:.4f}, other {other[last]:.4f}')
    if args.noise:
        noise = load_curve(args.noise, args.key)
        dn, nn_ = mean_abs_diff(ref, noise, args.skip)
        out['noise_mean_abs_diff'] = dn
        print(f'{args.key}: mean |ref - noise| = {dn:.4f} over {nn_} iterations '
              f'(seed-to-seed noise); ratio {d / dn:.2f}')
    return out


if __name__ == '__main__':
    run_cli(main)
