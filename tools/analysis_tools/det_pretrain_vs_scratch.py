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
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# beitlab imports from this checkout
sys.path.insert(0, REPO)

from beitlab.utils.cli import run_cli  # noqa: E402

DEFAULT_CONFIG = ('configs/mask-rcnn_beit/'
                  'mask-rcnn_beitvit-fmnist-p4_sfp_1xb8-600it_fashion-mnist-scenes-48px.py')
AP_KEYS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'segm_mAP',
           'segm_mAP_50', 'segm_mAP_75', 'segm_mAP_s', 'segm_mAP_m')


def train_command(args: argparse.Namespace, run: str) -> List[str]:
    n = args.iters
    options = [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}',
               f'param_scheduler.1.end={n}', f'default_hooks.checkpoint.interval={n}',
               f'train_dataloader.batch_size={args.batch_size}', f'randomness.seed={args.seed}']
    if run == 'pretrained':
        options.append(f'model.backbone.init_cfg.checkpoint={args.checkpoint}')
    else:
        options.append('model.backbone.init_cfg=None')
    return [sys.executable, osp.join(REPO, 'tools', 'train.py'), args.config, '--work-dir',
            osp.join(args.work_dir, run), '--cfg-options', *options]


def read_scalars(work_dir: str) -> Dict:
    """Loss per logged iteration and the last validation metrics from mmengine's scalars.json."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir}: did the run finish?')
    steps, losses, metrics = [], [], {}
    with open(files[-1]) as f:
        for line in f:
            rec = json.loads(line)
            if 'loss' in rec:
                steps.append(rec['step'])
                losses.append(rec['loss'])
            if 'coco/bbox_mAP' in rec:
                metrics = {k: rec[f'coco/{k}'] for k in AP_KEYS if f'coco/{k}' in rec}
    if not metrics:
        raise KeyError(f'{files[-1]} has no coco/bbox_mAP entry (the final validation)')
    return dict(steps=steps, loss=losses, metrics=metrics)


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
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--checkpoint', default='checkpoints/beit_fashion-mnist.pth')
    parser.add_argument('--iters', type=int, default=120)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0)
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

    if not args.summarize_only:
        deadline = time.time() + 60 * args.wait_minutes
        while 'pretrained' in args.runs and not osp.isfile(args.checkpoint):
            if time.time() > deadline:
                raise FileNotFoundError(
                    f'BEiT checkpoint {args.checkpoint!r} not found (train '
                    f'configs/beit/beit_vit-fmnist_fashion-mnist.py first, or --runs scratch)')
            time.sleep(30)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [REPO, os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep))
        if args.parallel:
            env['OMP_NUM_THREADS'] = '1'
        procs = {}
        for run in args.runs:
            os.makedirs(osp.join(args.work_dir, run), exist_ok=True)
            log = open(osp.join(args.work_dir, f'{run}.log'), 'w')
            start = time.time()
            procs[run] = (subprocess.Popen(train_command(args, run), cwd=REPO, env=env,
                                           stdout=log, stderr=subprocess.STDOUT), start)
            if not args.parallel:
                rc = procs[run][0].wait()
                print(f'{run}: exit {rc} after {time.time() - start:.0f} s')
        for run, (proc, start) in procs.items():
            if args.parallel:
                rc = proc.wait()
                print(f'{run}: exit {rc} after {time.time() - start:.0f} s')
            if proc.returncode != 0:
                raise RuntimeError(f'{run} run failed; see {args.work_dir}/{run}.log')

    results = {run: read_scalars(osp.join(args.work_dir, run)) for run in args.runs}
    summary = dict(config=args.config, checkpoint=args.checkpoint, iters=args.iters,
                   batch_size=args.batch_size, seed=args.seed,
                   metrics={run: res['metrics'] for run, res in results.items()})
    with open(osp.join(args.work_dir, 'result.json'), 'w') as f:
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
