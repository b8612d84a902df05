"""Detection transfer: BEiT-pre-trained backbone vs random initialisation, same budget.

BEiT Sec. 3.2 reports that MIM pre-training helps dense transfer; this script measures it on
the Fashion-MNIST scenes (Mask R-CNN, COCO box and mask AP). Both runs use the same config,
seed, data, iterations and batch size through ``tools/train.py``; only
``model.backbone.init_cfg`` differs (``BEiTPretrained`` from the BEiT checkpoint vs ``None``).
The final validation (at the last iteration) gives the AP. Writes ``result.json`` and a figure
(training loss curves and AP bars).

Usage::

    python tools/dataset_converters/fashion_mnist_scenes_coco.py     # data/fmnist_scenes_coco_48px
    python tools/analysis_tools/det_pretrain_vs_scratch.py --iters 120 \\
        --checkpoint checkpoints/beit_fashion-mnist.pth --figure docs/figures/det_pretrain_vs_scratch.png

With ``--seeds S [S ...]`` each run trains in ``WORK_DIR/s<seed>/<run>`` and writes its own
``result.json`` there (a run that has one is not trained again); ``--out`` gets the table of
every run and, over the seeds, mean ± std per init and the paired gap (``OUT`` and the
results as ``.json`` beside it), ``--val-interval`` records a validation AP curve per run
and ``--curves`` plots those curves.
"""
import argparse
import json
import os.path as osp
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# beitlab imports from this checkout
sys.path.insert(0, REPO)

from mmengine.config import Config  # noqa: E402

from beitlab.utils import experiments  # noqa: E402
from beitlab.utils.atomic_io import atomic_open, atomic_savefig, atomic_write_text  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402

DEFAULT_CONFIG = ('configs/mask-rcnn_beit/'
                  'mask-rcnn_beit-fmnist-p4_sfp_1xb8-600it_fashion-mnist-scenes-48x48.py')
# the per-seed table's metrics, in % (from the COCO keys)
SEED_METRICS = {'box AP': 'bbox_mAP', 'box AP50': 'bbox_mAP_50', 'mask AP': 'segm_mAP',
                'mask AP50': 'segm_mAP_50'}
AP_KEYS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'segm_mAP',
           'segm_mAP_50', 'segm_mAP_75', 'segm_mAP_s', 'segm_mAP_m')


def train_options(args: argparse.Namespace, cfg: Config, run: str) -> Dict[str, Any]:
    """The config's schedule set to ``--iters`` (the warm-up to ``--warmup-iters`` or kept),
    validation and a checkpoint at the end, and the backbone initialisation of ``run``."""
    n = args.iters
    options = {**experiments.schedule_options(cfg, n, warmup_iters=args.warmup_iters),
               'train_cfg.val_interval': args.val_interval or n,
               'default_hooks.checkpoint.interval': n,
               'train_dataloader.batch_size': args.batch_size}
    if run == 'pretrained':
        options['model.backbone.init_cfg.checkpoint'] = osp.abspath(args.checkpoint)
    else:
        options['model.backbone.init_cfg'] = None
    return options


def read_run(work_dir: str) -> Dict:
    """Loss per logged iteration and the last validation metrics of a run."""
    log = experiments.read_scalars(work_dir)
    loss = log.curve('loss') if 'loss' in log.keys() else {}  # none in runs shorter than the log interval
    final = log.last('coco/bbox_mAP')
    metrics = {k: final[f'coco/{k}'] for k in AP_KEYS if f'coco/{k}' in final}
    ap_curve = {str(step): round(100 * v, 2) for step, v in log.curve('coco/bbox_mAP').items()}
    return dict(steps=list(loss), loss=list(loss.values()), metrics=metrics, ap_curve=ap_curve)


def seed_result(run: str, seed: int, args: argparse.Namespace, res: Dict, seconds: float) -> Dict:
    """One run's record for the over-seeds table: the AP values in %, the box AP curve."""
    return dict(run=run, seed=seed, iters=args.iters, batch_size=args.batch_size,
                checkpoint=args.checkpoint if run == 'pretrained' else None,
                train_seconds=round(seconds, 1),
                **{name: round(100 * res['metrics'][key], 2) for name, key in SEED_METRICS.items()},
                curve=res['ap_curve'])


def seed_table(results: List[Dict]) -> str:
    """Markdown: a row per run, then mean ± sample std per init and the paired gap."""
    names = list(SEED_METRICS)
    lines = [f'| backbone init | seed | iterations | {" | ".join(names)} | train time (s) |',
             '|---|---|---|' + '---|' * len(names) + '---|']
    for r in sorted(results, key=lambda r: (r['seed'], r['run'])):
        lines.append(f'| {r["run"]} | {r["seed"]} | {r["iters"]} | '
                     + ' | '.join(f'{r[m]:.2f}' for m in names) + f' | {r["train_seconds"]:.0f} |')
    summary = experiments.seed_summary(results, names)
    return '\n'.join(lines + ([''] + summary if summary else []))


def plot(results: Dict[str, Dict], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for run, res in results.items():
        ax1.plot(res['steps'], res['loss'], label=run)
    ax1.set_xlabel('iteration')
    ax1.set_ylabel('total training loss')
    ax1.legend()
    keys = ['bbox_mAP', 'bbox_mAP_50', 'segm_mAP', 'segm_mAP_50']
    width = 0.8 / len(results)
    top = max(100 * res['metrics'][k] for res in results.values() for k in keys) or 1.0
    for i, (run, res) in enumerate(results.items()):
        xs = [j + i * width for j in range(len(keys))]
        vals = [100 * res['metrics'][k] for k in keys]
        ax2.bar(xs, vals, width, label=run)
        for x, v in zip(xs, vals):
            ax2.text(x, v + 0.02 * top, f'{v:.1f}', ha='center', fontsize=8)
    ax2.set_xticks([j + width * (len(results) - 1) / 2 for j in range(len(keys))])
    ax2.set_xticklabels(['box AP', 'box AP50', 'mask AP', 'mask AP50'])
    ax2.set_ylabel('COCO AP (%)')
    ax2.set_ylim(0, 1.15 * top)
    ax2.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)


def over_seeds(args: argparse.Namespace) -> None:
    """``--seeds``: train each (seed, run) not yet recorded, one at a time, then report."""
    if 'pretrained' in args.runs and not args.summarize_only and not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'BEiT checkpoint {args.checkpoint!r} not found (or --runs scratch)')
    cfg = None if args.summarize_only else Config.fromfile(args.config)
    results = []
    for seed in args.seeds:
        for run in experiments.seeded.RUNS:
            work_dir = osp.join(args.work_dir, f's{seed}', run)
            record = osp.join(work_dir, 'result.json')
            if not osp.isfile(record) and run in args.runs and not args.summarize_only:
                done = experiments.train(args.config, work_dir, train_options(args, cfg, run),
                                         seed=seed, log_file=osp.join(work_dir, 'train.log'))
                result = seed_result(run, seed, args, read_run(work_dir), done.seconds)
                atomic_write_text(record, json.dumps(result, indent=2))
            if osp.isfile(record):
                with open(record) as f:
                    results.append(json.load(f))
    if not results:
        raise FileNotFoundError(f'no s<seed>/<run>/result.json under {args.work_dir!r} for seeds '
                                f'{args.seeds}')
    table = seed_table(results)
    print(table)
    if args.out:
        with atomic_open(args.out, 'w') as f:
            f.write('<!-- written by tools/analysis_tools/det_pretrain_vs_scratch.py --seeds -->\n'
                    + table + '\n')
        with atomic_open(osp.splitext(args.out)[0] + '.json', 'w') as f:
            json.dump(results, f, indent=2)
    if args.curves:
        experiments.draw_seed_curves(results, args.curves, 'validation box AP (%)')
        print(f'curves: {args.curves}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--checkpoint', default='checkpoints/beit_fashion-mnist.pth')
    parser.add_argument('--iters', type=int, default=120)
    parser.add_argument('--warmup-iters', type=int, default=None,
                        help="warm-up iterations (default: the config's)")
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--seeds', type=int, nargs='+', help='several seeds, each run in '
                        'WORK_DIR/s<seed>/<run> (overrides --seed)')
    parser.add_argument('--val-interval', type=int, help='validate every N iterations (the AP '
                        'curve); default: once, at the end')
    parser.add_argument('--out', help='with --seeds: write the markdown table here (and the '
                        'results as .json beside it)')
    parser.add_argument('--curves', help='with --seeds: plot the box AP curves to this PNG')
    parser.add_argument('--work-dir', default='work_dirs/det_pretrain_vs_scratch')
    parser.add_argument('--runs', nargs='+', default=['pretrained', 'scratch'],
                        choices=['pretrained', 'scratch'])
    parser.add_argument('--parallel', action='store_true',
                        help='run both trainings at once (OMP_NUM_THREADS=1 each)')
    parser.add_argument('--wait-minutes', type=float, default=0,
                        help='poll this long for --checkpoint before giving up')
    parser.add_argument('--summarize-only', action='store_true',
                        help='only read finished runs in --work-dir')
    parser.add_argument('--figure', default=None, help='PNG with loss curves and AP bars')
    args = parser.parse_args()
    if args.seeds is not None:
        return over_seeds(args)
    if args.out or args.curves:
        parser.error('--out and --curves need --seeds')

    if not args.summarize_only:
        deadline = time.time() + 60 * args.wait_minutes
        while 'pretrained' in args.runs and not osp.isfile(args.checkpoint):
            if time.time() > deadline:
                raise FileNotFoundError(
                    f'BEiT checkpoint {args.checkpoint!r} not found (train '
                    f'configs/beit/beit_vit-fmnist_fashion-mnist.py first, or --runs scratch)')
            time.sleep(30)
        cfg = Config.fromfile(args.config)

        def launch(run: str) -> None:
            done = experiments.train(args.config, osp.join(args.work_dir, run),
                                     train_options(args, cfg, run), seed=args.seed,
                                     threads=1 if args.parallel else None,
                                     log_file=osp.join(args.work_dir, f'{run}.log'))
            print(f'{run}: finished after {done.seconds:.0f} s')

        with ThreadPoolExecutor(max_workers=len(args.runs) if args.parallel else 1) as pool:
            list(pool.map(launch, args.runs))

    results = {run: read_run(osp.join(args.work_dir, run)) for run in args.runs}
    summary = dict(config=args.config, checkpoint=args.checkpoint, iters=args.iters,
                   batch_size=args.batch_size, seed=args.seed,
                   metrics={run: res['metrics'] for run, res in results.items()})
    with atomic_open(osp.join(args.work_dir, 'result.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print('| init | box AP | box AP50 | box AP75 | mask AP | mask AP50 | mask AP75 |')
    print('|---|---|---|---|---|---|---|')
    for run, res in results.items():
        m = res['metrics']
        print(f'| {run} | ' + ' | '.join(f'{100 * m[k]:.1f}' for k in (
            'bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'segm_mAP', 'segm_mAP_50',
            'segm_mAP_75')) + ' |')
    if args.figure:
        plot(results, args.figure, f'Mask R-CNN on Fashion-MNIST scenes, {args.iters} iters x '
             f'{args.batch_size} images, same seed')
        print(f'figure written to {args.figure}')


if __name__ == '__main__':
    run_cli(main)
