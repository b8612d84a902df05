"""Semantic segmentation on Fashion-MNIST scenes: BEiT-pre-trained backbone vs random init.

Trains the same UPerNet config twice with the same seed, data order and budget, once with
the backbone initialised from the MIM checkpoint (``BEiTPretrained``) and once from
scratch (``model.backbone.init_cfg=None``), and tabulates the final validation mIoU, mAcc
and aAcc (mmseg's IoUMetric) together with the training time. Each run writes
``WORK_DIR/<run>/result.json``; the table is rebuilt from every result present, so the runs
may be made separately (``--runs scratch`` now, ``--runs pretrained`` once the checkpoint
exists). ``--figure`` additionally runs ``tools/test.py --out`` on each run's last checkpoint
and draws the first validation scenes: image, ground truth, then one prediction per run.
``--seeds 0 1 2`` makes one pair per seed (``WORK_DIR/s<seed>/<run>``) and adds mean ± std
over seeds and the gap paired by seed; ``--val-interval`` validates during training and
``--curves`` plots those mIoU curves. A run whose ``result.json`` exists is not trained
again (delete it, or use another work dir, to retrain).

    python tools/dataset_converters/fashion_mnist_scenes_seg.py --out data/fashion_mnist_scenes
    python tools/analysis_tools/seg_pretrain_vs_scratch.py \
        --checkpoint checkpoints/beit_fashion-mnist.pth \
        --out docs/figures/seg_pretrain_vs_scratch.md \
        --figure docs/figures/seg_pretrain_vs_scratch.png
"""
import argparse
import json
import os
import os.path as osp
import pickle
import sys
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
from mmengine.config import Config

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# beitlab imports from this checkout
sys.path.insert(0, REPO_ROOT)

from beitlab.utils import experiments  # noqa: E402
from beitlab.utils.atomic_io import atomic_open, atomic_write_text  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.runtime import ConfigOptionsAction  # noqa: E402

DEFAULT_CONFIG = 'configs/upernet_beit/upernet_beit-fmnist_1xb8-300it_fashion-mnist-scenes-48x48.py'
RUNS = experiments.seeded.RUNS


def budget_options(config: str, iters: Optional[int], warmup_iters: Optional[int],
                   val_interval: Optional[int] = None) -> Dict[str, Any]:
    """``iters`` iterations (the config's schedule resized by scheduler type), saved at the
    end and validated every ``val_interval`` iterations (default: at the end only, the
    validation curve then being one point); nothing when ``iters`` is ``None``."""
    if iters is None:
        if warmup_iters is not None or val_interval is not None:
            raise ValueError('--warmup-iters and --val-interval need --iters')
        return {}
    if val_interval is not None and (val_interval <= 0 or iters % val_interval):
        raise ValueError(f'--val-interval {val_interval} must divide --iters {iters}, so that '
                         'the last iteration is validated')
    return {**experiments.schedule_options(Config.fromfile(config), iters, warmup_iters),
            'train_cfg.val_interval': val_interval or iters,
            'default_hooks.checkpoint.interval': iters}


def run_dir(work_dir: str, run: str, seed: Optional[int]) -> str:
    """``WORK_DIR/<run>`` for the config's seed, ``WORK_DIR/s<seed>/<run>`` for ``--seeds``."""
    return osp.join(work_dir, run) if seed is None else osp.join(work_dir, f's{seed}', run)


def recorded_word(word: str) -> str:
    """A cfg-options word as the result records it: paths inside the checkout relative to
    it (the tools run in the repository root), so a result reads the same on any machine."""
    return word.replace(REPO_ROOT + os.sep, '')


def train_run(run: str, config: str, checkpoint: str, work_dir: str, seed: Optional[int],
              extra_options: Mapping[str, Any],
              scratch_layer_decay: Optional[float] = None) -> dict:
    """Train one run through tools/train.py and return its result dict (the final
    validation metrics and the mIoU curve)."""
    if run == 'pretrained':
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'pre-trained checkpoint {checkpoint!r} does not exist; train '
                                    'configs/beit/beit_vit-fmnist_fashion-mnist.py first')
        init = {'model.backbone.init_cfg.checkpoint': osp.abspath(checkpoint)}
    else:
        init = {'model.backbone.init_cfg': None}
        if scratch_layer_decay is not None:
            # layer decay presumes pre-trained lower layers; a random backbone needs them to move
            init['optim_wrapper.paramwise_cfg.layer_decay_rate'] = scratch_layer_decay
    options = {**init, **extra_options}
    done = experiments.train(config, run_dir(work_dir, run, seed), options, seed=seed, echo=True)
    log = done.scalars()
    val = log.last('mIoU')
    loss = log.last('loss')['loss'] if 'loss' in log.keys() else None
    result = dict(run=run, config=config, checkpoint=checkpoint if run == 'pretrained' else None,
                  iters=val.step, seed=seed, train_seconds=round(done.seconds, 1),
                  final_train_loss=loss, mIoU=val['mIoU'], mAcc=val['mAcc'], aAcc=val['aAcc'],
                  curve={str(step): v for step, v in log.curve('mIoU').items()},
                  options=[recorded_word(w) for w in experiments.cfg_option_words(options)])
    atomic_write_text(osp.join(done.work_dir, 'result.json'), json.dumps(result, indent=2))
    return result


def test_run(run: str, config: str, work_dir: str, extra_options: Mapping[str, Any],
             seed: Optional[int] = None) -> str:
    """``tools/test.py --out`` on the run's last checkpoint; returns the pickle path."""
    folder = osp.abspath(run_dir(work_dir, run, seed))
    out = osp.join(folder, 'val_predictions.pkl')
    experiments.test(config, experiments.final_checkpoint(folder), osp.join(folder, 'test'),
                     extra_options, extra_args=['--out', out], echo=True)
    return out


def draw_figure(pickles: Dict[str, str], path: str, num: int = 6, scale: int = 3) -> None:
    """Rows: the first ``num`` validation scenes; columns: image, ground truth, one
    prediction per run (class colours of ``FashionMNISTScenesDataset``)."""
    from PIL import Image

    from beitlab.datasets.fashion_mnist_scenes_seg import FASHION_MNIST_SCENES_PALETTE
    palette = np.array(FASHION_MNIST_SCENES_PALETTE, np.uint8)
    preds = {}
    for run, pkl in pickles.items():
        with open(pkl, 'rb') as f:  # our own tools/test.py output, not an external file
            preds[run] = sorted(pickle.load(f), key=lambda r: r['img_path'])[:num]
    first = next(iter(preds.values()))
    rows = []
    for i, sample in enumerate(first):
        img = np.array(Image.open(sample['img_path']).convert('RGB'))
        gt = palette[np.asarray(sample['gt_sem_seg']['data'])[0]]
        cols = [img, gt] + [palette[np.asarray(preds[r][i]['pred_sem_seg']['data'])[0]]
                            for r in preds]
        rows.append(np.concatenate([np.pad(c, ((1, 1), (1, 1), (0, 0)), constant_values=255)
                                    for c in cols], axis=1))
    grid = np.concatenate(rows, axis=0)
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale),
                                 Image.NEAREST).save(path)
    print(f'figure: {path} (columns: image, ground truth, {", ".join(preds)})')


def table(results: List[dict]) -> str:
    """Markdown table, one row per run; with several seeds also mean ± sample std per init
    and the gap (pre-trained minus random init) paired by seed."""
    lines = ['| backbone init | seed | iterations | mIoU | mAcc | aAcc | final train loss '
             '| train time (s) |',
             '|---|---|---|---|---|---|---|---|']
    for r in results:
        loss = f'{r["final_train_loss"]:.3f}' if r.get('final_train_loss') is not None else '-'
        seed = '-' if r.get('seed') is None else r['seed']
        lines.append(f'| {r["run"]} | {seed} | {r["iters"]} | {r["mIoU"]:.2f} | {r["mAcc"]:.2f} | '
                     f'{r["aAcc"]:.2f} | {loss} | {r["train_seconds"]:.0f} |')
    summary = experiments.seed_summary(results, METRICS)
    return '\n'.join(lines + ([''] + summary if summary else []))


METRICS = ('mIoU', 'mAcc', 'aAcc')


def draw_curves(results: List[dict], path: str) -> None:
    """Validation mIoU against iteration: one thin line per seed, the mean over seeds bold."""
    experiments.draw_seed_curves(results, path, 'validation mIoU (%)')
    print(f'curves: {path}')


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--checkpoint', default='checkpoints/beit_fashion-mnist.pth',
                        help='MIM checkpoint for the pre-trained run (keys backbone.*)')
    parser.add_argument('--work-dir', default='work_dirs/seg_pretrain_vs_scratch')
    parser.add_argument('--runs', nargs='+', choices=RUNS, default=list(RUNS),
                        help='runs to train now (the table uses every result.json present)')
    parser.add_argument('--collect-only', action='store_true',
                        help='train nothing, only tabulate the existing results')
    parser.add_argument('--seeds', type=int, nargs='+', help="randomness.seed of both runs, one "
                        "pair per seed in WORK_DIR/s<seed>/ (default: the config's seed, in "
                        "WORK_DIR/)")
    parser.add_argument('--iters', type=int, help="training iterations (default: the config's, "
                        '300); the schedule is resized by scheduler type')
    parser.add_argument('--warmup-iters', type=int, help="warm-up iterations with --iters "
                        "(default: the config's)")
    parser.add_argument('--val-interval', type=int, help='validate every N iterations with '
                        '--iters, for the curve (default: at the end only)')
    parser.add_argument('--scratch-layer-decay', type=float, help="layer decay of the random-"
                        "init run (default: the config's; 1.0 is none)")
    parser.add_argument('--curves', help='also plot the validation mIoU curves to this PNG')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction, default={},
                        help='extra key=value overrides passed to both runs (e.g. a data_root)')
    parser.add_argument('--out', help='also write the markdown table to this file')
    parser.add_argument('--figure', help='also draw predictions of every run to this PNG')
    args = parser.parse_args(argv)

    seeds = args.seeds or [None]
    if not args.collect_only:
        options = {**budget_options(args.config, args.iters, args.warmup_iters,
                                    args.val_interval), **args.cfg_options}
        for seed in seeds:
            for run in args.runs:
                if osp.isfile(osp.join(run_dir(args.work_dir, run, seed), 'result.json')):
                    continue   # a rerun adds only the missing runs
                train_run(run, args.config, args.checkpoint, args.work_dir, seed, options,
                          args.scratch_layer_decay)
    results = []
    for seed in seeds:
        for run in RUNS:
            path = osp.join(run_dir(args.work_dir, run, seed), 'result.json')
            if osp.isfile(path):
                with open(path) as f:
                    results.append(json.load(f))
    if not results:
        raise FileNotFoundError(f'no {"|".join(RUNS)}/result.json under {args.work_dir!r}')
    text = table(results)
    if args.curves:
        draw_curves(results, args.curves)
    if args.figure:
        first = [r for r in results if r.get('seed') == seeds[0]]
        pickles = {r['run']: test_run(r['run'], args.config, args.work_dir, args.cfg_options,
                                      seeds[0]) for r in first}
        draw_figure(pickles, args.figure)
    print(text)
    if args.out:
        with atomic_open(args.out, 'w') as f:
            f.write(text + '\n')
        with atomic_open(osp.splitext(args.out)[0] + '.json', 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    run_cli(main)
