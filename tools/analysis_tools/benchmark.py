"""Measure a config's data pipeline, training step, model step and inference.

    python tools/analysis_tools/benchmark.py CONFIG [--iters 30] [--warmup 3]
        [--batch-size B] [--amp bf16] [--device cpu|cuda] [--out result.json]
        [--phases data,train,model,infer] [--fast] [--compile] [--checkpoint-blocks]
        [--profile] [--no-flush-denormal] [--cfg-options k=v ...]

Phases (each reported as images/s from the median iteration, plus peak memory):
  data   the configured train dataloader alone (workers, decoding, transforms);
  train  the full iteration as the Runner runs it: next batch from the loader,
         data preprocessor, tokenizer/target, forward, backward, optimizer step;
  model  the same step on batches loaded beforehand (no data wait); its FLOPs
         (one step under ``FlopCounterMode``) over its median time give the
         achieved FLOP/s, compared with a dense matrix multiply timed in this run;
  target the target generator (tokenizer) alone, when the model has one;
  infer  ``forward(mode=--infer-mode)`` under ``torch.no_grad`` in eval mode.
Peak memory is CUDA ``max_memory_allocated`` or this process's peak RSS (the
dataloader workers are separate processes and are not counted in the RSS).

Drift: every phase also reports the mean of its last 10 timed iterations over that of its
first 10 (after the warm-up; half of them each below 20 iterations), flagged beyond 10 %:
a step that slows down as the run goes on (subnormals without flush-to-zero, a
neighbour's load) shows there and not in the median. ``--profile`` runs one more model
step (the train step when ``model`` is not measured) under ``torch.profiler`` and prints
its time by category (``beitlab.utils.step_profile``; with ``--profile`` the kernels of a
compiled graph are built with inductor's kernel profiling, so they appear as ``compiled
kernels``). Flush-to-zero is set in every CPU thread first, as in ``tools/train.py``
(``--no-flush-denormal`` to compare without).

Fast path: a config with ``fast_path = True`` (or ``--fast``) is measured with its pieces on,
as ``tools/train.py`` trains it (``beitlab/engine/fast_path.py``);
``--cfg-options fast_path=False`` measures the same config without them. FLOPs are counted on
the eager loss (the same arithmetic; the counter does not see inside a compiled graph).
"""
import argparse
import json
import os
import os.path as osp
import platform
import sys
import time
from typing import Any, Callable, Iterator, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.engine.compiled_loss import suspend_compiled_loss  # noqa: E402
from beitlab.engine.fast_path import apply_fast_path  # noqa: E402
from beitlab.engine.hooks.activation_checkpoint_hook import ActivationCheckpointHook  # noqa: E402
from beitlab.engine.hooks.channels_last_hook import ChannelsLastHook  # noqa: E402
from beitlab.engine.hooks.compile_hook import CompileHook  # noqa: E402
from beitlab.engine.hooks.compiled_loss_hook import CompiledLossHook  # noqa: E402
from beitlab.registry import HOOKS, MODELS  # noqa: E402
from beitlab.utils.atomic_io import atomic_open  # noqa: E402
from beitlab.utils.benchmark import (  # noqa: E402
    PhaseResult,
    count_flops,
    cpu_model,
    format_table,
    load_average,
    measure_matmul_rate,
    time_iterations,
)
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.denormals import add_flush_denormal_arg, setup_flush_denormal  # noqa: E402
from beitlab.utils.runtime import check_config_file  # noqa: E402
from beitlab.utils.setup_env import register_all_modules  # noqa: E402
from beitlab.utils.step_profile import profile_step, profile_table  # noqa: E402

PHASES = ('data', 'train', 'model', 'target', 'infer')


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Benchmark a beitlab config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--iters', type=int, default=30,
                        help='timed iterations per phase (the drift compares the first and '
                        'last 10)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations per phase')
    parser.add_argument('--batch-size', type=int, help='override train_dataloader.batch_size')
    parser.add_argument('--num-workers', type=int, help='override train_dataloader.num_workers')
    parser.add_argument('--amp', choices=['none', 'bf16'], default='none',
                        help='bf16: autocast through AutocastOptimWrapper (CPU or GPU)')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--phases', default='data,train,model,target,infer',
                        help=f'comma-separated subset of {",".join(PHASES)}')
    parser.add_argument('--infer-mode', default='tensor',
                        help="forward mode of the inference phase ('tensor' or 'predict')")
    parser.add_argument('--fast', action='store_true',
                        help='the fast path (beitlab/engine/fast_path.py), as the config key '
                        'fast_path = True: bf16 autocast, fused AdamW, bf16 tokenizer, exact '
                        'mask counts, the BEiT loss compiled as one function')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile every backbone block (CompileHook) before timing')
    parser.add_argument('--checkpoint-blocks', action='store_true',
                        help='activation checkpointing of backbone.blocks '
                        '(ActivationCheckpointHook) before timing')
    parser.add_argument('--channels-last-tokenizer', action='store_true',
                        help='channels-last target generator (ChannelsLastHook)')
    parser.add_argument('--tokenizer-bf16', action='store_true',
                        help='set model.target_generator.bf16=True (tokenizer under bf16 '
                        'autocast, even in an fp32 run)')
    parser.add_argument('--fused-optimizer', action='store_true',
                        help='optim_wrapper.optimizer.fused=True (fused AdamW kernel)')
    parser.add_argument('--matmul-size', type=int, help='side of the reference matmul')
    parser.add_argument('--threads', type=int, help='torch.set_num_threads (CPU)')
    parser.add_argument('--no-flops', action='store_true', help='skip the FLOP count')
    parser.add_argument('--profile', action='store_true',
                        help='after the timed iterations, profile one model step (train step '
                        'without the model phase) and print its time by category')
    add_flush_denormal_arg(parser)
    parser.add_argument('--out', help='write the results as JSON to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_dataloader.num_workers=2')
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.phases.split(',') if p.strip()]
    unknown = sorted(set(args.phases) - set(PHASES))
    if unknown:
        parser.error(f'--phases: unknown {unknown}, expected a subset of {list(PHASES)}')
    if args.profile and not {'model', 'train'} & set(args.phases):
        parser.error(f'--profile profiles the model or train step; --phases {",".join(args.phases)} '
                     f'has neither (add model)')
    return args




def machine_info(device: torch.device) -> dict[str, Any]:
    """Versions and hardware, written into the JSON next to the figures."""
    import mmengine
    info = dict(python=platform.python_version(), torch=torch.__version__,
                mmengine=mmengine.__version__, cpu=cpu_model(), cpu_count=os.cpu_count(),
                torch_threads=torch.get_num_threads(),
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                mkldnn_bf16=bool(getattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported',
                                         lambda: False)()))
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
        info['cuda'] = torch.version.cuda
    return info


def load_config(args: argparse.Namespace) -> Config:
    check_config_file(args.config)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.batch_size is not None:
        cfg.train_dataloader.batch_size = args.batch_size
    if args.num_workers is not None:
        cfg.train_dataloader.num_workers = args.num_workers
        if args.num_workers == 0:
            cfg.train_dataloader.persistent_workers = False
    if args.tokenizer_bf16:
        cfg.model.target_generator.bf16 = True
    if args.fused_optimizer:
        cfg.optim_wrapper.optimizer.fused = True
    args.fast_path_changes = apply_fast_path(cfg, args.fast, args.device)
    ow_cfg = cfg.optim_wrapper
    if args.amp == 'none' and str(ow_cfg.get('type')).split('.')[-1] in (
            'AutocastOptimWrapper', 'AmpOptimWrapper') \
            and str(ow_cfg.get('dtype', '')) in ('bfloat16', 'torch.bfloat16'):
        args.amp = 'bf16'  # the config itself autocasts: compare with the bf16 matmul rate
    if args.amp == 'bf16':
        # mmengine's AmpOptimWrapper refuses CPUs; this wrapper autocasts on any
        # device and needs no loss scaler for bfloat16.
        ow = cfg.optim_wrapper
        if ow.get('type', 'OptimWrapper') in ('OptimWrapper', 'AmpOptimWrapper'):
            ow.type = 'AutocastOptimWrapper'
            ow.pop('loss_scale', None)
        ow.dtype = 'bfloat16'
    return cfg


def infinite_batches(loader) -> Iterator[Any]:
    """Batches forever; a new epoch re-uses the (persistent) workers."""
    while True:
        yielded = False
        for batch in loader:
            yielded = True
            yield batch
        if not yielded:
            raise RuntimeError('benchmark: the train dataloader yielded no batch '
                               '(empty dataset, or drop_last with too few samples)')


def _target_view(model, batch) -> Optional[Callable[[], Any]]:
    """A call of the target generator on the tokenizer view, or None if the model has none."""
    tg = getattr(model, 'target_generator', None)
    if tg is None:
        return None
    data = model.data_preprocessor(batch, True)
    inputs = data['inputs']
    view = inputs[-1] if isinstance(inputs, (list, tuple)) else inputs

    def run():
        with torch.no_grad():
            return tg(view)
    return run


def build_model(cfg: Config, args: argparse.Namespace, device: torch.device):
    model = MODELS.build(cfg.model)
    if hasattr(model, 'init_weights'):
        model.init_weights()
    model.to(device)
    model.train()
    hooks = [HOOKS.build(h) for h in cfg.get('custom_hooks', []) or []]
    if args.checkpoint_blocks:
        hooks.append(ActivationCheckpointHook(['backbone.blocks']))
    if args.channels_last_tokenizer:
        hooks.append(ChannelsLastHook(['target_generator']))
    if args.compile:
        hooks.append(CompileHook('backbone.blocks'))
    applied = []
    # Order: checkpoint wrappers first, so a compiled backbone sees them.
    for h in sorted(hooks, key=lambda h: not isinstance(h, ActivationCheckpointHook)):
        if isinstance(h, (ActivationCheckpointHook, ChannelsLastHook, CompileHook)):
            h.apply(model)
            applied.append(type(h).__name__)
        elif isinstance(h, CompiledLossHook) and h.apply(model) is not None:
            applied.append(type(h).__name__)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, optim_wrapper, applied


def _model_phases(args, cfg, device, batches, batch_size, results):
    """The train/model/target/infer phases; returns (flops, matmul, applied hooks, profile
    of one step or None)."""
    model, optim_wrapper, applied = build_model(cfg, args, device)
    preloaded = [next(batches) for _ in range(min(args.iters + args.warmup, 4))]

    def train_step(batch) -> dict:
        return model.train_step(batch, optim_wrapper)

    flops = None
    # The reference matmul is timed before and after the model phases and the two
    # medians averaged, so a neighbour's load that comes or goes hits both sides.
    mm_dtype = torch.bfloat16 if args.amp == 'bf16' else torch.float32
    matmul_before = measure_matmul_rate(device, mm_dtype, args.matmul_size)
    if 'train' in args.phases:
        results['train'] = time_iterations('train', lambda: train_step(next(batches)),
                                           iters=args.iters, warmup=args.warmup,
                                           images_per_iter=batch_size, device=device)
    if 'model' in args.phases:
        counter = iter(range(1 << 62))
        results['model'] = time_iterations(
            'model', lambda: train_step(preloaded[next(counter) % len(preloaded)]),
            iters=args.iters, warmup=args.warmup, images_per_iter=batch_size, device=device)
        if not args.no_flops:
            with suspend_compiled_loss(model):
                flops = count_flops(lambda: train_step(preloaded[0]))
    matmul_after = measure_matmul_rate(device, mm_dtype, args.matmul_size)
    matmul = dict(matmul_after, before=matmul_before['flops_per_s'],
                  after=matmul_after['flops_per_s'],
                  flops_per_s=(matmul_before['flops_per_s'] + matmul_after['flops_per_s']) / 2,
                  flops_per_cpu_s=(matmul_before['flops_per_cpu_s'] +
                                   matmul_after['flops_per_cpu_s']) / 2,
                  best_flops_per_s=max(matmul_before['best_flops_per_s'],
                                       matmul_after['best_flops_per_s']))
    profile = None
    if args.profile:
        phase = 'model' if 'model' in args.phases else 'train'
        step = (lambda: train_step(preloaded[0])) if phase == 'model' \
            else (lambda: train_step(next(batches)))
        profile = dict(phase=phase, unprofiled_median_ms=results[phase].median_s * 1e3,
                       **profile_step(step, device))

    if 'target' in args.phases:
        run_target = _target_view(model, preloaded[0])
        if run_target is not None:
            def target_step():
                with torch.autocast(device.type, dtype=torch.bfloat16,
                                    enabled=args.amp == 'bf16'):
                    run_target()
            results['target'] = time_iterations('target', target_step, iters=args.iters,
                                                warmup=args.warmup, images_per_iter=batch_size,
                                                device=device)
            if not args.no_flops:
                results['target'].extra['flops'] = count_flops(target_step)['total']

    if 'infer' in args.phases:
        model.eval()

        def infer_step():
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                 enabled=args.amp == 'bf16'):
                data = model.data_preprocessor(preloaded[0], False)
                return model(**data, mode=args.infer_mode)
        results['infer'] = time_iterations('infer', infer_step, iters=args.iters,
                                           warmup=args.warmup, images_per_iter=batch_size,
                                           device=device)
        model.train()
    return flops, matmul, applied, profile


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    flush_denormal = setup_flush_denormal(args.flush_denormal)
    if args.profile:
        # must hold when the kernels are generated: compiled kernels visible to the profiler
        import torch._inductor.config as inductor_config
        inductor_config.cpp.enable_kernel_profile = True
    register_all_modules()
    # the optimizer constructor logs one line per parameter at INFO
    MMLogger.get_instance('mmengine').setLevel('WARNING')
    cfg = load_config(args)
    DefaultScope.get_instance(f'benchmark-{time.time_ns()}',
                              scope_name=cfg.get('default_scope', 'beitlab'))
    device = torch.device(args.device)
    torch.manual_seed(0)
    loadavg_start = load_average()

    dl_cfg = cfg.train_dataloader
    batch_size = int(dl_cfg.batch_size)
    loader = Runner.build_dataloader(dl_cfg, seed=0)
    batches = infinite_batches(loader)
    results: dict[str, PhaseResult] = {}

    if 'data' in args.phases:
        results['data'] = time_iterations('data', lambda: next(batches), iters=args.iters,
                                          warmup=args.warmup, images_per_iter=batch_size)
        results['data'].extra['num_workers'] = int(dl_cfg.get('num_workers', 0))

    applied: list[str] = []
    flops = None
    matmul = None
    profile = None
    if set(args.phases) - {'data'}:
        flops, matmul, applied, profile = _model_phases(args, cfg, device, batches, batch_size,
                                                        results)
    else:
        matmul = measure_matmul_rate(device, torch.float32, args.matmul_size)

    out: dict[str, Any] = dict(
        config=args.config, device=str(device), batch_size=batch_size, amp=args.amp,
        iters=args.iters, warmup=args.warmup, applied_hooks=applied,
        fast_path=args.fast_path_changes,
        optim_wrapper=cfg.optim_wrapper.get('type', 'OptimWrapper'),
        machine=machine_info(device), matmul=matmul,
        phases={k: v.to_dict() for k, v in results.items()},
        flush_denormal=dict(enabled=flush_denormal.requested, holds=flush_denormal.holds,
                            message=flush_denormal.message))
    if profile is not None:
        out['profile'] = profile
    if flops is not None:
        step_s = results['model'].median_s
        achieved = flops['total'] / step_s
        out['model_flops'] = dict(
            flops_per_step=flops['total'], flops_per_image=flops['total'] / batch_size,
            by_op=flops['by_op'], achieved_flops_per_s=achieved,
            utilisation=achieved / matmul['flops_per_s'])
        cpu_s = out['phases']['model'].get('median_cpu_s')
        if device.type == 'cpu' and cpu_s:
            # FLOP per CPU-second of the step over that of the matmul: the same ratio
            # on an idle machine, far less sensitive to a loaded one.
            out['model_flops']['utilisation_cpu_time'] = \
                flops['total'] / cpu_s / matmul['flops_per_cpu_s']
    out['loadavg_start'] = loadavg_start
    out['loadavg_end'] = load_average()
    return out


def drift_lines(result: dict[str, Any]) -> list[str]:
    """One line per phase whose last timed iterations are more than 10 % slower or faster
    than its first ones."""
    lines = []
    for name, ph in result['phases'].items():
        drift = ph.get('drift')
        if not drift or not drift['flagged']:
            continue
        way = 'slower' if drift['ratio'] > 1 else 'faster'
        hint = ''
        if way == 'slower' and not result.get('flush_denormal', {}).get('holds', True):
            hint = '; flush-to-zero is off: subnormal values accumulating slow a step down'
        lines.append(f"DRIFT {name}: the last {drift['window']} iterations average "
                     f"{drift['last_mean_s']:.4g} s, the first {drift['window']} "
                     f"{drift['first_mean_s']:.4g} s ({drift['ratio']:.2f}x, {way}){hint}")
    return lines


def profile_lines(profile: dict[str, Any]) -> list[str]:
    """The ``--profile`` table with a line saying which step it is."""
    return [f"profile of one {profile['phase']} step: {profile['wall_ms']:.1f} ms under the "
            f"profiler (unprofiled median {profile['unprofiled_median_ms']:.1f} ms), host time "
            f"by category", profile_table(profile),
            'top operators: ' + ', '.join(f'{name} {t:.1f} ms'
                                          for name, t in profile['top_ops'][:8])]


def summary_table(result: dict[str, Any]) -> str:
    rows = []
    for name, ph in result['phases'].items():
        mem = ph.get('peak_memory_bytes')
        drift = ph.get('drift')
        rows.append(dict(phase=name, **{
            'images/s': ph['images_per_s'], 'mean images/s': ph['mean_images_per_s'],
            'median s/iter': ph['median_s'],
            'last/first': None if drift is None else f"{drift['ratio']:.2f}"
            + (' !' if drift['flagged'] else ''),
            'peak MiB': None if mem is None else mem / 2 ** 20}))
    text = format_table(rows, ['phase', 'images/s', 'mean images/s', 'median s/iter',
                               'last/first', 'peak MiB'])
    mm = result['matmul']
    lines = [
        f"config {result['config']}  device {result['device']}  batch {result['batch_size']}  "
        f"amp {result['amp']}  hooks {result['applied_hooks'] or '-'}",
        f"fast path: {', '.join(result['fast_path'])}" if result.get('fast_path') else '',
        f"machine {result['machine']['cpu']} ({result['machine']['torch_threads']} threads), "
        f"torch {result['machine']['torch']}, load {result['loadavg_start']} -> "
        f"{result['loadavg_end']}",
        result['flush_denormal']['message'] if 'flush_denormal' in result else '',
        text,
        f"matmul {mm['size']}^3 {mm['dtype']}: {mm['flops_per_s'] / 1e9:.1f} GFLOP/s "
        f"(before {mm.get('before', mm['flops_per_s']) / 1e9:.1f}, after "
        f"{mm.get('after', mm['flops_per_s']) / 1e9:.1f}, best {mm['best_flops_per_s'] / 1e9:.1f})"]
    if 'model_flops' in result:
        mf = result['model_flops']
        lines.append(f"model step: {mf['flops_per_step'] / 1e9:.1f} GFLOP/step, achieved "
                     f"{mf['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s = "
                     f"{100 * mf['utilisation']:.0f}% of the matmul rate"
                     + (f" ({100 * mf['utilisation_cpu_time']:.0f}% per CPU-second)"
                        if 'utilisation_cpu_time' in mf else ''))
    if 'data' in result['phases'] and 'model' in result['phases']:
        # The loader prefetches, so single data iterations can be instant while the
        # sustained rate is lower: the pipeline is judged by its mean over the window.
        ratio = (result['phases']['data']['mean_images_per_s']
                 / result['phases']['model']['images_per_s'])
        lines.append(f"data pipeline (mean over the timed iterations) / model step: "
                     f"{ratio:.2f}x")
    lines += drift_lines(result)
    if 'profile' in result:
        lines += profile_lines(result['profile'])
    return '\n'.join(line for line in lines if line)


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    args = parse_args(argv)
    result = run_benchmark(args)
    print(summary_table(result))
    if args.out:
        with atomic_open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'results written to {args.out}')
    return result


if __name__ == '__main__':
    run_cli(main)
