"""Compare MIM pre-training variants on real Fashion-MNIST at equal backbone, data and budget.

BEiT (dVAE tokens), BEiT v2 (VQ-KD tokens + patch aggregation), MAE, SimMIM and MaskFeat
pre-train the same ViT (docs/DESIGN.md: 6 layers, 192 dims, 32 px, 4 px patches) from their
Fashion-MNIST configs with the same iterations, batch size, learning-rate schedule and data
pipeline (only the masking differs, as each method prescribes). Each backbone is then
fine-tuned with the same recipe (the fine-tuning config and the class-balanced label subsets of
``tools/analysis_tools/label_efficiency.py``) on 10 % of the labels and tested on a fixed
class-balanced subset of the 10,000 test images; a random-init run gives the floor.

Tokenizers: BEiT reads the Phase-1 dVAE (``--dvae-checkpoint``; trained here for
``--tokenizer-iters`` if the file is missing). BEiT v2's VQ-KD is trained here for
``--tokenizer-iters`` against the BEiT backbone of this very comparison as teacher, so BEiT v2
costs BEiT + VQ-KD + its own run: the table says so.

Pre-training images/s is a separate, interleaved micro-benchmark of one optimisation step
(target generation, forward, backward, AdamW) per variant on a fixed synthetic batch, so that
the numbers are measured in the same conditions whatever else runs on the machine.

    python tools/analysis_tools/compare_mim_variants.py --work-dir work_dirs/compare_mim \\
        --pretrain-iters 30 --batch-size 32 --tokenizer-iters 100 --tokenizer-batch-size 32 \\
        --finetune-labels 6000 --finetune-iters 40 --test-images 1000 --jobs 2 \\
        --out docs/variants_table.md

Every run goes through ``tools/train.py`` / ``tools/test.py``; results are appended to
``<work-dir>/results.jsonl`` and a rerun skips what is done.
"""
import argparse
import json
import os
import os.path as osp
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Mapping, Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# beitlab imports from this checkout
sys.path.insert(0, REPO)

from mmengine.config import Config  # noqa: E402

from beitlab.utils import experiments  # noqa: E402
from beitlab.utils.atomic_io import atomic_open  # noqa: E402
from beitlab.utils.benchmark import load_average  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.denormals import add_flush_denormal_arg  # noqa: E402
from beitlab.utils.experiments import balanced_subset  # noqa: E402

FINETUNE_CONFIG = 'configs/beit_finetune/beit_vit-fmnist_finetune-lrd0.65_fashion-mnist.py'
DVAE_CONFIG = 'configs/dvae/dvae_fashion-mnist.py'
VQKD_CONFIG = 'configs/vqkd/vqkd_vit-fmnist_fashion-mnist.py'
VARIANTS: Dict[str, str] = {
    'BEiT (dVAE)': 'configs/beit/beit_vit-fmnist_fashion-mnist.py',
    'BEiT v2 (VQ-KD)': 'configs/beitv2/beitv2_vit-fmnist_fashion-mnist.py',
    'MAE': 'configs/mae/mae_vit-fmnist_fashion-mnist.py',
    'SimMIM': 'configs/simmim/simmim_vit-fmnist_fashion-mnist.py',
    'MaskFeat': 'configs/maskfeat/maskfeat_vit-fmnist_fashion-mnist.py',
}
_LOCK = threading.Lock()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data-root', default='data/fashion_mnist',
                   help='the ImageNet-style folder (tokenizers, fine-tuning, test); MIM '
                   'pre-training reads the idx files ($BEITLAB_FASHION_MNIST_ROOT)')
    p.add_argument('--work-dir', default='work_dirs/compare_mim')
    p.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument('--pretrain-iters', type=int, default=300)
    p.add_argument('--batch-size', type=int, default=64, help='pre-training batch (all variants)')
    p.add_argument('--lr', type=float, default=1e-3, help='pre-training peak lr (all variants)')
    p.add_argument('--tokenizer-iters', type=int, default=300,
                   help='iterations of the dVAE (only when --dvae-checkpoint is missing) and VQ-KD')
    p.add_argument('--tokenizer-batch-size', type=int, default=128)
    p.add_argument('--dvae-checkpoint', default='checkpoints/dvae_fashion-mnist.pth')
    p.add_argument('--finetune-labels', type=int, default=6000, help='10 %% of 60k by default')
    p.add_argument('--finetune-iters', type=int, default=200)
    p.add_argument('--finetune-batch-size', type=int, default=32)
    p.add_argument('--finetune-lr', type=float, default=1e-3)
    p.add_argument('--finetune-mixup-prob', type=float, default=1.0,
                   help='probability of Mixup/CutMix per batch (the recipe: 1.0); a run of a '
                   'few dozen steps learns little under Mixup, so short comparisons lower it')
    p.add_argument('--test-images', type=int, default=10000,
                   help='class-balanced subset of the test split (10000: all of it)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--no-scratch', action='store_true', help='skip the random-init fine-tune')
    p.add_argument('--bench-batch', type=int, default=64)
    p.add_argument('--bench-rounds', type=int, default=5)
    p.add_argument('--no-benchmark', action='store_true', help='skip the throughput benchmark')
    p.add_argument('--jobs', type=int, default=1, help='runs at once (each OMP_NUM_THREADS=1)')
    p.add_argument('--out', default='docs/variants_table.md')
    p.add_argument('--report-only', action='store_true')
    add_flush_denormal_arg(p)  # the throughput benchmark here, passed on to every run
    return p.parse_args()


def tool_args(args: argparse.Namespace) -> List[str]:
    """Arguments every tools/train.py and tools/test.py run gets."""
    return [] if args.flush_denormal else ['--no-flush-denormal']


# ---------------------------------------------------------------------------- runs
def log_file(args: argparse.Namespace, name: str, tool: str) -> str:
    return osp.join(args.work_dir, 'logs', f'{name}_{tool}.log')


def schedule(config: str, iters: int) -> Dict[str, Any]:
    """Warm-up over the first 10 %, then the config's main scheduler to the end."""
    return experiments.schedule_options(Config.fromfile(osp.join(REPO, config)), iters,
                                        warmup_iters=max(1, iters // 10))


def train(args: argparse.Namespace, name: str, config: str, iters: int, batch: int,
          extra_opts: Mapping[str, Any]) -> str:
    """tools/train.py for ``iters``; returns the final checkpoint (skipped when it exists)."""
    work = osp.abspath(osp.join(args.work_dir, name))
    ckpt = osp.join(work, f'iter_{iters}.pth')
    if osp.isfile(ckpt):
        return ckpt
    opts = {'train_dataloader.batch_size': batch, 'train_dataloader.num_workers': 1,
            'default_hooks.checkpoint.interval': iters, 'default_hooks.logger.interval': 5,
            **schedule(config, iters), **extra_opts}
    dataset = Config.fromfile(osp.join(REPO, config)).train_dataloader.dataset
    if dataset.get('type') != 'FashionMNISTDataset':  # the MIM configs read the idx files
        opts['train_dataloader.dataset.data_root'] = osp.abspath(args.data_root)
    done = experiments.train(config, work, opts, seed=args.seed, threads=1,
                             extra_args=tool_args(args), log_file=log_file(args, name, 'train'))
    record(args, dict(kind='train', name=name, iters=iters, batch=batch,
                      minutes=round(done.seconds / 60, 2)))
    return ckpt


def slug(name: str) -> str:
    """'BEiT v2 (VQ-KD)' -> 'beit-v2-vq-kd' (work-dir and log names)."""
    return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')


def finetune(args: argparse.Namespace, name: str, pretrained: Optional[str], train_ann: str,
             test_ann: str) -> float:
    """The fine-tuning config, same recipe for every backbone; returns test top-1 (%)."""
    iters = args.finetune_iters
    run = f'ft_{slug(name)}'
    work = osp.abspath(osp.join(args.work_dir, run))
    root = osp.abspath(args.data_root)
    opts = {'model.pretrained': pretrained,
            'train_dataloader.dataset.data_root': root,
            'train_dataloader.dataset.ann_file': train_ann,
            'train_dataloader.batch_size': args.finetune_batch_size,
            'test_dataloader.dataset.data_root': root,
            'test_dataloader.dataset.ann_file': test_ann,
            'optim_wrapper.optimizer.lr': args.finetune_lr,
            'model.data_preprocessor.mixup.prob': args.finetune_mixup_prob,
            **schedule(FINETUNE_CONFIG, iters), 'train_cfg.val_interval': iters + 1,
            'val_dataloader': None, 'val_evaluator': None, 'val_cfg': None,
            'default_hooks.checkpoint.interval': iters, 'default_hooks.logger.interval': 10}
    if pretrained is None:
        opts['optim_wrapper.paramwise_cfg.layer_decay_rate'] = 1.0
    t0 = time.time()
    experiments.train(FINETUNE_CONFIG, work, opts, seed=args.seed, threads=1,
                      extra_args=tool_args(args), log_file=log_file(args, run, 'train'))
    tested = experiments.test(FINETUNE_CONFIG, osp.join(work, f'iter_{iters}.pth'),
                              osp.join(work, 'test'), opts, threads=1,
                              extra_args=tool_args(args), log_file=log_file(args, run, 'test'))
    top1 = tested.metrics['accuracy/top1']
    record(args, dict(kind='finetune', name=name, top1=top1, iters=iters,
                      mixup_prob=args.finetune_mixup_prob,
                      labels=args.finetune_labels, test_images=args.test_images,
                      minutes=round((time.time() - t0) / 60, 2)))
    return top1


def record(args: argparse.Namespace, result: dict) -> None:
    with _LOCK:
        with open(osp.join(args.work_dir, 'results.jsonl'), 'a') as f:
            f.write(json.dumps(result) + '\n')
    print(json.dumps(result), flush=True)


def load_results(args: argparse.Namespace) -> List[dict]:
    path = osp.join(args.work_dir, 'results.jsonl')
    if not osp.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------- throughput
def benchmark(args: argparse.Namespace) -> Dict[str, float]:
    """Images/s of one pre-training step per variant (1 thread, interleaved rounds, median)."""
    import numpy as np
    import torch
    from mmengine.structures import BaseDataElement

    from beitlab.registry import MASK_GENERATORS, MODELS
    from beitlab.utils import register_all_modules
    from beitlab.utils.denormals import setup_flush_denormal

    torch.set_num_threads(1)
    flush_denormal = setup_flush_denormal(args.flush_denormal)
    print(flush_denormal.message, flush=True)
    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    np.random.seed(0)
    B = args.bench_batch
    steps = {}
    for name in args.variants:
        cfg = Config.fromfile(osp.join(REPO, VARIANTS[name]))
        model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
        tg = model_cfg.get('target_generator', {})
        if tg.get('type') == 'VisualTokenTarget':
            # throughput does not depend on the weights: random tokenizers, no files needed
            tg.pop('checkpoint', None)
        model = MODELS.build(model_cfg)
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        gen_cfg = next(t['mask_generator'] for t in cfg.train_pipeline
                       if t['type'] == 'GenerateMask')
        gen = MASK_GENERATORS.build(gen_cfg)
        samples = []
        for _ in range(B):
            s = BaseDataElement()
            s.mask = torch.from_numpy(gen())
            samples.append(s)
        inputs = [torch.randn(B, 3, 32, 32), torch.rand(B, 3, 32, 32)]

        def step(model=model, opt=opt, inputs=inputs, samples=samples) -> None:
            losses = model(inputs, samples, mode='loss')
            loss = sum(v for k, v in losses.items() if k.startswith('loss'))
            opt.zero_grad()
            loss.backward()
            opt.step()
        step()  # warm-up
        steps[name] = step
    times: Dict[str, List[float]] = {n: [] for n in steps}
    for _ in range(args.bench_rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    ips = {n: round(B / float(np.median(t)), 1) for n, t in times.items()}
    record(args, dict(kind='throughput', batch=B, rounds=args.bench_rounds, images_per_s=ips,
                      load_average=(load_average() or [None])[0], flush_denormal=flush_denormal.holds))
    return ips


# ---------------------------------------------------------------------------- report
def write_report(args: argparse.Namespace, results: List[dict]) -> str:
    top1 = {r['name']: r['top1'] for r in results if r['kind'] == 'finetune'}
    trains = {r['name']: r for r in results if r['kind'] == 'train'}
    bench = [r for r in results if r['kind'] == 'throughput']
    ips = bench[-1]['images_per_s'] if bench else {}
    extra = {'BEiT (dVAE)': 'dVAE (Phase 1)',
             'BEiT v2 (VQ-KD)': 'BEiT run (teacher) + VQ-KD',
             'MAE': '-', 'SimMIM': '-', 'MaskFeat': '-'}
    rows = ['| variant | pre-training images/s (1 thread) | fine-tune top-1 (%) | needs first |',
            '|---|---|---|---|']
    for name in args.variants:
        acc = f'{top1[name]:.2f}' if name in top1 else 'n/a'
        rows.append(f'| {name} | {ips.get(name, "n/a")} | {acc} | {extra[name]} |')
    if 'random init' in top1:
        rows.append(f'| random init (no pre-training) | - | {top1["random init"]:.2f} | - |')
    setup = (f'Pre-training: {args.pretrain_iters} iterations x batch {args.batch_size} for every '
             f'variant; fine-tuning: {args.finetune_iters} iterations x batch '
             f'{args.finetune_batch_size} on {args.finetune_labels} labels (Mixup/CutMix '
             f'probability {args.finetune_mixup_prob}); test: '
             f'{args.test_images} test images; images/s: median of {args.bench_rounds} '
             f'interleaved steps at batch {args.bench_batch}'
             + (f' (load average {bench[-1]["load_average"]:.1f})'
                if bench and bench[-1]['load_average'] is not None else '') + '.')
    minutes = ', '.join(f'{n}: {r["minutes"]} min' for n, r in trains.items())
    table = '\n'.join(rows)
    with atomic_open(args.out, 'w') as f:
        f.write('<!-- written by tools/analysis_tools/compare_mim_variants.py -->\n'
                f'{table}\n\n{setup}\n\nWall-clock of the training runs: {minutes}.\n')
    return table


# ---------------------------------------------------------------------------- main
def main() -> None:
    args = parse_args()
    os.makedirs(osp.join(args.work_dir, 'logs'), exist_ok=True)
    if args.report_only:
        print(write_report(args, load_results(args)))
        return
    P, B = args.pretrain_iters, args.batch_size
    common = {'optim_wrapper.optimizer.lr': args.lr}
    ckpts: Dict[str, str] = {}

    def tokens_chain() -> None:
        """dVAE -> BEiT -> VQ-KD (teacher: this BEiT) -> BEiT v2."""
        dvae = osp.abspath(args.dvae_checkpoint)
        if not osp.isfile(dvae):
            dvae = train(args, 'dvae', DVAE_CONFIG, args.tokenizer_iters,
                         args.tokenizer_batch_size,
                         {'val_dataloader': None, 'val_evaluator': None, 'val_cfg': None,
                          'train_cfg.val_interval': 100000000, 'custom_hooks': []})
        wanted = set(args.variants)
        if wanted & {'BEiT (dVAE)', 'BEiT v2 (VQ-KD)'}:
            ckpts['BEiT (dVAE)'] = train(
                args, 'beit', VARIANTS['BEiT (dVAE)'], P, B,
                {**common, 'model.target_generator.checkpoint': dvae})
        if 'BEiT v2 (VQ-KD)' in wanted:
            vqkd = train(args, 'vqkd', VQKD_CONFIG, args.tokenizer_iters,
                         args.tokenizer_batch_size,
                         {'model.tokenizer.teacher_checkpoint': ckpts['BEiT (dVAE)']})
            ckpts['BEiT v2 (VQ-KD)'] = train(
                args, 'beitv2', VARIANTS['BEiT v2 (VQ-KD)'], P, B,
                {**common, 'model.target_generator.checkpoint': vqkd})

    def pixel_chain(names: List[str]) -> None:
        for name in names:
            ckpts[name] = train(args, slug(name), VARIANTS[name], P, B, common)

    pixel = [n for n in ('MAE', 'SimMIM', 'MaskFeat') if n in args.variants]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(tokens_chain)]
        if args.jobs > 1:
            half = (len(pixel) + 1) // 2 if args.jobs > 2 else len(pixel)
            futures += [pool.submit(pixel_chain, pixel[:half])]
            if pixel[half:]:
                futures += [pool.submit(pixel_chain, pixel[half:])]
        else:
            futures += [pool.submit(pixel_chain, pixel)]
        for fut in futures:
            fut.result()

    # fine-tuning: the same class-balanced label subset and test subset for every backbone
    with open(osp.join(args.data_root, 'meta', 'train.txt')) as f:
        train_lines = [line.strip() for line in f if line.strip()]
    with open(osp.join(args.data_root, 'meta', 'val.txt')) as f:
        test_lines = [line.strip() for line in f if line.strip()]
    train_ann = osp.abspath(osp.join(args.work_dir, f'train_n{args.finetune_labels}.txt'))
    test_ann = osp.abspath(osp.join(args.work_dir, f'test_n{args.test_images}.txt'))
    with open(train_ann, 'w') as f:
        f.write('\n'.join(balanced_subset(train_lines, args.finetune_labels, args.seed)) + '\n')
    with open(test_ann, 'w') as f:
        f.write('\n'.join(balanced_subset(test_lines, args.test_images, 1234)) + '\n')
    done = {r['name'] for r in load_results(args) if r['kind'] == 'finetune'}
    todo = [(n, ckpts[n]) for n in args.variants if n not in done]
    if not args.no_scratch and 'random init' not in done:
        todo.append(('random init', None))
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(lambda item: finetune(args, item[0], item[1], train_ann, test_ann), todo))

    if not args.no_benchmark:
        benchmark(args)
    print(write_report(args, load_results(args)))


if __name__ == '__main__':
    run_cli(main)
