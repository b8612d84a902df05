"""Label efficiency of BEiT pre-training on real Fashion-MNIST.

Fine-tunes (a) the beitlab MIM-pre-trained backbone and (b) the same architecture from random
initialisation on 1 %, 10 % and 100 % of the training labels (class-balanced subsets drawn with
each seed; both inits see the same subset), with the same recipe, schedule and budget, and
evaluates top-1 on the 10,000 test images (``data/fashion_mnist/val``). Every run goes through
``tools/train.py`` and ``tools/test.py`` with the Fashion-MNIST fine-tuning config.

    python tools/analysis_tools/label_efficiency.py \\
        --checkpoint checkpoints/beit_fashion-mnist.pth \\
        --sizes 600 6000 --seeds 600:3 6000:2 --iters 600:200 6000:400 \\
        --work-dir work_dirs/label_efficiency --out docs/label_efficiency

Results are appended to ``<work-dir>/results.jsonl`` as each run ends (a rerun skips runs
already there), and the markdown table (``<out>.md``) and plot (``<out>.png``) are rewritten
from all results at the end (``--report-only`` just rewrites them).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from collections import defaultdict
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# beitlab imports from this checkout
sys.path.insert(0, REPO)

from mmengine.config import Config  # noqa: E402

from beitlab.utils import experiments  # noqa: E402
from beitlab.utils.atomic_io import atomic_open, atomic_savefig  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.experiments import balanced_subset, mean_std, mean_std_text  # noqa: E402

DEFAULT_CONFIG = 'configs/beit_finetune/beit_vit-fmnist_finetune-lrd0.65_fashion-mnist.py'
DEFAULT_LR, DEFAULT_WEIGHT_DECAY = 1e-3, 0.05


class Subset(NamedTuple):
    """One run's training labels: the chosen lines written to ``ann_file`` (``<path>
    <label>`` for the PNG folder, ``<index> <label>`` for the idx files) and, for the idx
    files, their indices (None: all 60,000). With ``--eval heldout`` the evaluation images
    are training images outside the subset, listed the same way in ``heldout_ann`` /
    ``heldout_indices``."""
    ann_file: str
    indices: Optional[List[int]]
    heldout_ann: Optional[str] = None
    heldout_indices: Optional[List[int]] = None


def training_lines(args: argparse.Namespace) -> List[str]:
    """``<item> <label>`` per training image in file order: the PNG folder's annotation
    list, or ``<index> <label>`` of the idx files (the same order and labels, so a seed picks
    the same images from either)."""
    if args.data == 'folder':
        with open(osp.join(args.data_root, 'meta', 'train.txt')) as f:
            return [line.strip() for line in f if line.strip()]
    from beitlab.datasets.fashion_mnist_files import load_fashion_mnist
    _, labels = load_fashion_mnist(args.fashion_mnist_root, 'train')
    return [f'{i} {int(label)}' for i, label in enumerate(labels)]


def parse_map(items: List[str], name: str) -> Dict[int, int]:
    """['600:3', '6000:2'] -> {600: 3, 6000: 2}."""
    out = {}
    for item in items:
        try:
            k, v = item.split(':')
            out[int(k)] = int(v)
        except ValueError as err:
            raise ValueError(f'--{name}: expected SIZE:VALUE items like 600:3, got {item!r}') from err
    return out


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=DEFAULT_CONFIG)
    p.add_argument('--checkpoint', default='checkpoints/beit_fashion-mnist.pth',
                   help='beitlab MIM checkpoint (keys backbone.*)')
    p.add_argument('--data', choices=['idx', 'folder'], default='idx',
                   help='idx: the four idx files decoded once and held in memory '
                   '(FashionMNISTDataset, about 9x faster per image than PNG decoding); folder: '
                   'the PNG folder of tools/dataset_converters/fashion_mnist.py (--data-root)')
    p.add_argument('--fashion-mnist-root', default=None,
                   help='folder of the idx files (default: $BEITLAB_FASHION_MNIST_ROOT or the '
                   "Debian package's folder)")
    p.add_argument('--data-root', default='data/fashion_mnist')
    p.add_argument('--sizes', type=int, nargs='+', default=[600, 6000, 60000])
    p.add_argument('--seeds', nargs='+', default=['600:3', '6000:2', '60000:1'],
                   help='runs per label count, SIZE:N (seeds 0..N-1)')
    p.add_argument('--iters', nargs='+', default=['600:200', '6000:400', '60000:1000'],
                   help='optimizer steps per label count, SIZE:ITERS (same for both inits)')
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--lr', type=float, default=DEFAULT_LR, help='peak lr (AdamW) at --batch-size')
    p.add_argument('--weight-decay', type=float, default=DEFAULT_WEIGHT_DECAY,
                   help='AdamW weight decay')
    p.add_argument('--warmup-frac', type=float, default=0.1)
    p.add_argument('--scratch-lr', type=float, default=None,
                   help='peak lr for random init (default: --lr)')
    p.add_argument('--scratch-weight-decay', type=float, default=None,
                   help='weight decay for random init (default: --weight-decay)')
    p.add_argument('--eval', choices=['test', 'heldout'], default='test',
                   help='test: the 10,000 test images; heldout: --heldout-size class-balanced '
                   'training images outside the run\'s subset, to choose lr / weight decay / '
                   'length for each init without looking at the test set')
    p.add_argument('--heldout-size', type=int, default=5000)
    p.add_argument('--scratch-layer-decay', type=float, default=1.0,
                   help='layer decay for random init (1.0: none; layer decay presumes '
                   'pre-trained lower layers, so it would only hold the baseline back)')
    p.add_argument('--inits', nargs='+', default=['pretrained', 'scratch'],
                   choices=['pretrained', 'scratch'])
    p.add_argument('--recipe', choices=['light', 'full'], default='light',
                   help='light: crop + flip + label smoothing + drop path (short budgets); '
                   'full: the config as is (+ Mixup/CutMix, RandAugment, random erasing)')
    p.add_argument('--bf16', action='store_true', help='bfloat16 autocast for train and test')
    p.add_argument('--threads', type=int, default=1, help='OMP_NUM_THREADS of each run')
    p.add_argument('--work-dir', default='work_dirs/label_efficiency')
    p.add_argument('--out', default='docs/label_efficiency', help='writes OUT.md and OUT.png')
    p.add_argument('--tag', default='',
                   help='name of this pre-trained checkpoint in run keys and the report '
                   '(e.g. iter100), so runs from different checkpoints do not collide')
    p.add_argument('--keep-checkpoints', action='store_true',
                   help='keep each run\'s final fine-tuned checkpoint (by default removed '
                   'after its test: ~40 MB each)')
    p.add_argument('--val-interval', type=int, default=0,
                   help='also evaluate on the 10,000 test images every N steps, for the curve '
                   'in the run\'s scalars.json (0: only after the last step). A curve to '
                   'look at, not a model selection: the figure is always the last step\'s')
    p.add_argument('--report-only', action='store_true')
    p.add_argument('--length-report', nargs='+', metavar='TAG',
                   help='instead of the label-efficiency report, write the table and plot of '
                   'top-1 against these --tag values (the lengths of pre-training, in order)')
    return p.parse_args()


def optimiser_settings(args: argparse.Namespace, init: str) -> Tuple[float, float]:
    """(peak lr, weight decay) of ``init``: ``--scratch-*`` override ``--lr`` /
    ``--weight-decay`` for random init."""
    if init == 'scratch':
        return (args.lr if args.scratch_lr is None else args.scratch_lr,
                args.weight_decay if args.scratch_weight_decay is None
                else args.scratch_weight_decay)
    return args.lr, args.weight_decay


def run_key(args: argparse.Namespace, init: str, size: int, seed: int, iters: int) -> str:
    tag = f'-{args.tag}' if args.tag and init == 'pretrained' else ''
    lr, wd = optimiser_settings(args, init)
    # the optimiser settings name the run only when they differ from the defaults, so the
    # keys of earlier default runs stay what they were
    hyper = ''.join(f'_{name}{value:g}' for name, value, default in (
        ('lr', lr, DEFAULT_LR), ('wd', wd, DEFAULT_WEIGHT_DECAY)) if value != default)
    heldout = '_heldout' if args.eval == 'heldout' else ''
    return f'{args.recipe}_{init}{tag}_n{size}_it{iters}{hyper}{heldout}_s{seed}'


def same_settings(args: argparse.Namespace, record: dict) -> bool:
    """Whether a recorded run used this invocation's optimiser settings and evaluation for
    its init (records older than these fields used the defaults and the test set)."""
    lr, wd = optimiser_settings(args, record['init'])
    return (record.get('lr', DEFAULT_LR) == lr
            and record.get('weight_decay', DEFAULT_WEIGHT_DECAY) == wd
            and record.get('eval', 'test') == args.eval)


LIGHT_TRAIN_PIPELINE = [
    dict(type='LoadImageChecked'),
    dict(type='mmcv.Pad', size=(32, 32), pad_val=0),
    dict(type='RandomResizedCrop', size=32, scale=(0.6, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackImageInputs'),
]


def make_subset(args: argparse.Namespace, lines: List[str], chosen: List[str], ann: str,
                seed: int) -> Subset:
    """The run's :class:`Subset`; with ``--eval heldout`` also ``--heldout-size``
    class-balanced training lines outside ``chosen``, drawn with ``seed`` (written next to
    ``ann``)."""
    def indices(picked: List[str]) -> Optional[List[int]]:
        if args.data == 'folder' or len(picked) == len(lines):
            return None
        return [int(line.split(' ', 1)[0]) for line in picked]

    if args.eval != 'heldout':
        return Subset(ann, indices(chosen))
    taken = set(chosen)
    rest = [line for line in lines if line not in taken]
    if len(rest) < args.heldout_size:
        raise ValueError(f'--eval heldout needs {args.heldout_size} training images outside the '
                         f'subset of {len(chosen)}, but only {len(rest)} are left: use a smaller '
                         '--heldout-size or a smaller label count')
    heldout = balanced_subset(rest, args.heldout_size, seed)
    heldout_ann = ann[:-len('.txt')] + f'_heldout{args.heldout_size}.txt'
    with open(heldout_ann, 'w') as f:
        f.write('\n'.join(heldout) + '\n')
    return Subset(ann, indices(chosen), heldout_ann, indices(heldout))


def data_options(args: argparse.Namespace, cfg: Config, subset: Subset) -> Dict[str, Any]:
    """cfg-options that point the fine-tuning config's train and test loaders at the data:
    the run's training subset (``subset.indices`` of the idx files, or ``subset.ann_file`` of
    the PNG folder) and all 10,000 test images (or, ``--eval heldout``, the held-out
    training images)."""
    heldout = args.eval == 'heldout'
    if args.data == 'folder':
        root = osp.abspath(args.data_root)
        options = {'train_dataloader.dataset.data_root': root,
                   'test_dataloader.dataset.data_root': root,
                   'train_dataloader.dataset.ann_file': subset.ann_file}
        if heldout:
            options.update({'test_dataloader.dataset.ann_file': subset.heldout_ann,
                            'test_dataloader.dataset.data_prefix': dict(img_path='train')})
        return options
    fmnist_root = osp.abspath(args.fashion_mnist_root) if args.fashion_mnist_root else None
    train = dict(_delete_=True, type='FashionMNISTDataset', data_root=fmnist_root, split='train',
                 pipeline=cfg.train_dataloader.dataset.pipeline)
    if subset.indices is not None:
        train['indices'] = list(subset.indices)
    test = dict(_delete_=True, type='FashionMNISTDataset', data_root=fmnist_root,
                split='train' if heldout else 'test', test_mode=True,
                pipeline=cfg.test_dataloader.dataset.pipeline)
    if heldout:
        test['indices'] = list(subset.heldout_indices)
    return {'train_dataloader.dataset': train, 'test_dataloader.dataset': test}


def val_options(args: argparse.Namespace, cfg: Config, iters: int,
                data: Dict[str, Any]) -> Dict[str, Any]:
    """cfg-options of the validation loop: off, or (``--val-interval N``) the evaluation
    images every N steps, evaluated as the final test is."""
    if args.val_interval <= 0:
        return {'train_cfg.val_interval': iters + 1,
                'val_dataloader': None, 'val_evaluator': None, 'val_cfg': None}
    if args.data == 'folder':
        dataset = {f'val_dataloader.dataset.{k}': data[f'test_dataloader.dataset.{k}']
                   for k in ('data_root', 'ann_file', 'data_prefix')
                   if f'test_dataloader.dataset.{k}' in data}
    else:
        dataset = {'val_dataloader.dataset': dict(data['test_dataloader.dataset'])}
    # log_metric_by_epoch=False: the metrics' step is the iteration (epoch 0 otherwise)
    return {'train_cfg.val_interval': args.val_interval, **dataset,
            'default_hooks.logger.log_metric_by_epoch': False,
            'val_cfg': dict(type='ValLoop', fp16=True) if args.bf16 else dict(type='ValLoop')}


def run_options(args: argparse.Namespace, cfg: Config, init: str, iters: int,
                subset: Subset) -> Dict[str, Any]:
    """The fine-tuning config's cfg-options for this run's data, init, schedule and recipe
    (the same for tools/train.py and tools/test.py)."""
    warmup = max(1, int(round(args.warmup_frac * iters)))
    lr, weight_decay = optimiser_settings(args, init)
    data = data_options(args, cfg, subset)
    options: Dict[str, Any] = {
        'model.pretrained': osp.abspath(args.checkpoint) if init == 'pretrained' else None,
        **data,
        'train_dataloader.batch_size': args.batch_size,
        'optim_wrapper.optimizer.lr': lr,
        'optim_wrapper.optimizer.weight_decay': weight_decay,
        **experiments.schedule_options(cfg, iters, warmup_iters=warmup),
        **val_options(args, cfg, iters, data),
        'default_hooks.checkpoint': dict(type='beitlab.AtomicCheckpointHook', interval=iters,
                                         by_epoch=False, max_keep_ckpts=1),
        'default_hooks.logger.interval': 50,
    }
    if args.recipe == 'light':
        # Mixup/CutMix, RandAugment and random erasing are built for 100+ epoch schedules; in a
        # few hundred steps they keep BOTH models from fitting (random init stayed at chance).
        options['model.data_preprocessor.mixup'] = None
        if args.data == 'folder':
            options['train_dataloader.dataset.pipeline'] = LIGHT_TRAIN_PIPELINE
        else:
            options['train_dataloader.dataset']['pipeline'] = LIGHT_TRAIN_PIPELINE
    if init == 'scratch':
        options['optim_wrapper.paramwise_cfg.layer_decay_rate'] = args.scratch_layer_decay
    if args.bf16:
        options['optim_wrapper.type'] = 'AutocastOptimWrapper'
        options['test_cfg'] = dict(type='TestLoop', fp16=True)
    return options


def one_run(args: argparse.Namespace, cfg: Config, init: str, size: int, seed: int, iters: int,
            subset: Subset) -> dict:
    """Fine-tune with tools/train.py, evaluate the final checkpoint with tools/test.py."""
    key = run_key(args, init, size, seed, iters)
    work = osp.abspath(osp.join(args.work_dir, key))
    options = run_options(args, cfg, init, iters, subset)
    t0 = time.time()
    experiments.train(args.config, work, options, seed=seed, deterministic=False,
                      threads=args.threads, log_file=osp.join(args.work_dir, f'{key}_train.log'))
    ckpt = osp.join(work, f'iter_{iters}.pth')
    metrics = experiments.test(args.config, ckpt, osp.join(work, 'test'), options,
                               threads=args.threads,
                               log_file=osp.join(args.work_dir, f'{key}_test.log')).metrics
    if osp.exists(ckpt) and not args.keep_checkpoints:
        os.remove(ckpt)  # ~40 MB each; the numbers are what we keep
    return dict(key=key, init=init, size=size, seed=seed, iters=iters, recipe=args.recipe,
                checkpoint=args.checkpoint if init == 'pretrained' else None, tag=args.tag,
                batch_size=args.batch_size, lr=options['optim_wrapper.optimizer.lr'],
                weight_decay=options['optim_wrapper.optimizer.weight_decay'], eval=args.eval,
                bf16=args.bf16, data=args.data,
                layer_decay=(args.scratch_layer_decay if init == 'scratch' else 'config'),
                top1=metrics['accuracy/top1'], top5=metrics['accuracy/top5'],
                minutes=round((time.time() - t0) / 60, 2))


def draw_errorbars(path: str, series: List[Tuple[str, list, List[List[float]]]], xlabel: str,
                   ylabel: str, title: str, log_x: bool = False,
                   xticks: Optional[List[str]] = None) -> None:
    """One line per ``(label, xs, values per x)``: the mean over seeds with the sample std as
    error bars, written to ``path`` (nothing without matplotlib)."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, xs, values in series:
        stats = [mean_std(v) for v in values]
        ax.errorbar(xs, [m for m, _ in stats], yerr=[0 if np.isnan(sd) else sd for _, sd in stats],
                    marker='o', capsize=3, label=label)
    if log_x:
        ax.set_xscale('log')
    if xticks is not None:
        ax.set_xticks(range(len(xticks)), xticks)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def seed_count(pretrained: int, scratch: int) -> str:
    """The seeds column: one count when both inits ran as many seeds (or one did not run),
    ``"2 / 1"`` (pre-trained / random init) when they differ, since each mean is over its own."""
    if pretrained == scratch or not pretrained or not scratch:
        return str(max(pretrained, scratch))
    return f'{pretrained} / {scratch}'


def write_report(results: List[dict], out: str, tag: str = '') -> str:
    """Markdown table (mean ± sample std over seeds; the gap is paired by seed) and a plot."""
    by = defaultdict(dict)
    for r in results:
        if r['init'] == 'pretrained' and r.get('tag', '') != tag:
            continue
        by[(r['size'], r['iters'])].setdefault(r['init'], {})[r['seed']] = r
    rows = ['| labels | steps x batch | seeds | pre-trained top-1 (%) | random init top-1 (%) '
            '| gap (points) | min / max gap |', '|---|---|---|---|---|---|---|']
    for size, steps in sorted(by):
        pre, scr = by[(size, steps)].get('pretrained', {}), by[(size, steps)].get('scratch', {})
        paired = sorted(set(pre) & set(scr))
        gaps = [pre[s]['top1'] - scr[s]['top1'] for s in paired]
        any_run = next(iter({**pre, **scr}.values()))
        rows.append(
            f'| {size} ({100 * size / 60000:g} %) | {any_run["iters"]} x {any_run["batch_size"]} '
            f'| {seed_count(len(pre), len(scr))} '
            f'| {mean_std_text([r["top1"] for r in pre.values()])} '
            f'| {mean_std_text([r["top1"] for r in scr.values()])} | {mean_std_text(gaps)} '
            f'| {f"{min(gaps):+.2f} / {max(gaps):+.2f}" if gaps else "n/a"} |')
    table = '\n'.join(rows)
    with atomic_open(out + '.md', 'w') as f:
        f.write('<!-- written by tools/analysis_tools/label_efficiency.py -->\n' + table + '\n')
    series = []
    for init, label in (('pretrained', 'BEiT pre-trained'), ('scratch', 'random init')):
        keys = [k for k in sorted(by) if by[k].get(init)]
        if keys:
            series.append((label, [k[0] for k in keys],
                           [[r['top1'] for r in by[k][init].values()] for k in keys]))
    draw_errorbars(out + '.png', series, xlabel='training labels',
                   ylabel='top-1 on 10k test images (%)', title='Fashion-MNIST fine-tuning',
                   log_x=True)
    return table


def write_length_report(results: List[dict], out: str, tags: Sequence[str]) -> str:
    """Top-1 against the length of pre-training: a row per ``--tag`` (in the order given,
    random init first) and a column per label count and schedule that every row has run.
    Each column averages only the seeds that all its rows have, so every row sees the same
    subsets; the gain over random init is paired by seed. Writes ``OUT.md`` and ``OUT.png``."""
    by = defaultdict(lambda: defaultdict(dict))  # (size, iters) -> row -> seed -> top1
    for r in results:
        row = 'scratch' if r['init'] == 'scratch' else r.get('tag', '')
        if row == 'scratch' or row in tags:
            by[(r['size'], r['iters'])][row][r['seed']] = r['top1']
    rows = ['scratch', *tags]
    columns = [k for k in sorted(by) if all(by[k].get(row) for row in rows)]
    if not columns:
        raise ValueError(f'no label count has runs of random init and of every tag in {list(tags)}: '
                         'run label_efficiency.py with --tag for each first')
    seeds = {k: sorted(set.intersection(*(set(by[k][row]) for row in rows))) for k in columns}
    for k in columns:
        if not seeds[k]:
            raise ValueError(f'label count {k[0]} ({k[1]} steps): no seed was run for random init '
                             f'and every tag in {list(tags)}')
    head = ' | '.join(f'{size} labels, {iters} steps, seeds {",".join(map(str, seeds[(size, iters)]))}'
                      for size, iters in columns)
    lines = [f'| pre-training | {head} |', '|---|' + '---|' * len(columns)]
    for row in rows:
        cells = []
        for k in columns:
            top1 = [by[k][row][s] for s in seeds[k]]
            cell = mean_std_text(top1)
            if row != 'scratch':
                gains = [by[k][row][s] - by[k]['scratch'][s] for s in seeds[k]]
                cell += f' ({mean_std_text(gains, signed=True)})'
            cells.append(cell)
        lines.append(f'| {"none (random init)" if row == "scratch" else row} | ' + ' | '.join(cells)
                     + ' |')
    table = '\n'.join(lines)
    with atomic_open(out + '.md', 'w') as f:
        f.write('<!-- written by tools/analysis_tools/label_efficiency.py --length-report; '
                'top-1 (%) on the evaluation images, in brackets the gain over random init -->\n'
                + table + '\n')
    draw_errorbars(out + '.png', [
        (f'{k[0]} labels', list(range(len(rows))), [[by[k][row][s] for s in seeds[k]] for row in rows])
        for k in columns], xlabel='pre-training', ylabel='top-1 (%)',
        title='Fine-tuning against the length of pre-training', xticks=['none', *tags])
    return table


def write_sweep_report(results: List[dict], out: str, tag: str = '') -> str:
    """Markdown table of the ``--eval heldout`` runs: held-out top-1 per init, label count,
    steps, lr and weight decay (mean over seeds), the best of each init and label count in
    bold: the settings to take to the test set."""
    by = defaultdict(list)
    for r in results:
        if r.get('eval', 'test') != 'heldout':
            continue
        if r['init'] == 'pretrained' and r.get('tag', '') != tag:
            continue
        by[(r['init'], r['size'], r['iters'], r['lr'], r['weight_decay'])].append(r['top1'])
    best = {}
    for (init, size, *_), top1 in by.items():
        best[(init, size)] = max(best.get((init, size), -1.0), float(np.mean(top1)))
    rows = ['| init | labels | steps | lr | weight decay | seeds | held-out top-1 (%) |',
            '|---|---|---|---|---|---|---|']
    for key in sorted(by):
        init, size, iters, lr, wd = key
        cell = mean_std_text(by[key])
        if float(np.mean(by[key])) == best[(init, size)]:
            cell = f'**{cell}**'
        rows.append(f'| {init} | {size} | {iters} | {lr:g} | {wd:g} | {len(by[key])} | {cell} |')
    table = '\n'.join(rows)
    with atomic_open(out + '.md', 'w') as f:
        f.write('<!-- written by tools/analysis_tools/label_efficiency.py --eval heldout -->\n'
                + table + '\n')
    return table


def main() -> None:
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    results_file = osp.join(args.work_dir, 'results.jsonl')
    results = []
    if osp.exists(results_file):
        with open(results_file) as f:
            results = [json.loads(line) for line in f if line.strip()]
    results = [r for r in results if r.get('recipe', 'full') == args.recipe]
    if not args.report_only:
        seeds, iters = parse_map(args.seeds, 'seeds'), parse_map(args.iters, 'iters')
        if 'pretrained' in args.inits and not osp.isfile(args.checkpoint):
            raise FileNotFoundError(f'pre-trained checkpoint {args.checkpoint!r} does not exist: '
                                    'train configs/beit/beit_vit-fmnist_fashion-mnist.py first '
                                    '(docs/finetune.md)')
        cfg = Config.fromfile(args.config)
        lines = training_lines(args)
        done = {r['key'] for r in results}
        for size in args.sizes:
            if size not in seeds or size not in iters:
                raise ValueError(f'label count {size} needs --seeds {size}:N and --iters {size}:I')
            for seed in range(seeds[size]):
                ann = osp.abspath(osp.join(args.work_dir, f'train_{args.data}_n{size}_s{seed}.txt'))
                chosen = balanced_subset(lines, size, seed)
                with open(ann, 'w') as f:
                    f.write('\n'.join(chosen) + '\n')
                subset = make_subset(args, lines, chosen, ann, seed)
                for init in args.inits:
                    if run_key(args, init, size, seed, iters[size]) in done:
                        continue
                    r = one_run(args, cfg, init, size, seed, iters[size], subset)
                    print(json.dumps(r), flush=True)
                    results.append(r)
                    with open(results_file, 'a') as f:
                        f.write(json.dumps(r) + '\n')
    kept = [r for r in results if same_settings(args, r)]
    if args.length_report:
        print(write_length_report(kept, args.out, args.length_report))
    else:
        print(write_report(kept, args.out, args.tag))
    if args.eval == 'heldout':
        print(write_sweep_report(results, args.out + '_sweep', args.tag))


if __name__ == '__main__':
    run_cli(main)
