"""The gain of each piece of the fast path on a config: training steps of several variants
of the same model, alternating within one run.

    python tools/analysis_tools/benchmark_fast_path.py CONFIG [--variants LADDER]
        [--iters 20] [--warmup 3] [--batch-size B] [--threads N] [--out result.json]
        [--cfg-options k=v ...]

A variant is ``fp32`` (the fast path off: ``fast_path = False``) or pieces of
:data:`beitlab.engine.fast_path.FAST_PATH_PIECES` joined by ``+`` (``bf16+compile``); ``all``
is every piece. The default ladder adds one piece at a time::

    fp32, bf16, bf16+fused_optimizer, bf16+fused_optimizer+tokenizer_bf16, all

Every variant is built from the config with :func:`~beitlab.engine.fast_path.apply_fast_path`
and the same initial weights, and runs ``model.train_step`` (data preprocessor, tokenizer,
forward, backward, optimizer) on the same batches, loaded beforehand from the config's
train dataloader with exact mask counts (so every variant computes the same thing and the
compiled loss sees the same shapes). After ``--warmup`` untimed steps each (the compiled
variant compiles there), one timed step of each variant runs in turn, ``--iters`` times, so
that a neighbour's load hits all of them alike. Reported per variant: median wall-clock
and CPU time (this process, all threads) per step, images/s, and the ratios to the first
variant and to the previous one (the gain of the piece it adds), with the CPU model,
threads and the load average before and after. Flush-to-zero is set first, as in
``tools/train.py``.
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Union

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.engine.fast_path import FAST_PATH_PIECES, apply_fast_path  # noqa: E402
from beitlab.engine.hooks.compiled_loss_hook import CompiledLossHook  # noqa: E402
from beitlab.registry import HOOKS, MODELS  # noqa: E402
from beitlab.utils.atomic_io import atomic_open  # noqa: E402
from beitlab.utils.benchmark import cpu_model, format_table, load_average  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.denormals import setup_flush_denormal  # noqa: E402
from beitlab.utils.runtime import ConfigOptionsAction, check_config_file  # noqa: E402
from beitlab.utils.setup_env import register_all_modules  # noqa: E402

LADDER = ('fp32', 'bf16', 'bf16+fused_optimizer', 'bf16+fused_optimizer+tokenizer_bf16', 'all')


def variant_pieces(name: str) -> Union[bool, Dict[str, bool]]:
    """The ``fast_path`` value of a variant name (``fp32``, ``all`` or ``piece+piece``).

    Raises:
        ValueError: a piece that is not in ``FAST_PATH_PIECES``.
    """
    if name == 'fp32':
        return False
    if name == 'all':
        return True
    pieces = name.split('+')
    unknown = sorted(set(pieces) - set(FAST_PATH_PIECES))
    if unknown:
        raise ValueError(f'--variants {name!r}: unknown piece(s) {unknown}; expected fp32, all or '
                         f'pieces of {list(FAST_PATH_PIECES)} joined by +')
    return {p: p in pieces for p in FAST_PATH_PIECES}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='A/B of the fast-path pieces on a config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--variants', default=','.join(LADDER),
                        help='comma list of variants (fp32, all, or pieces joined by +)')
    parser.add_argument('--iters', type=int, default=20, help='timed steps per variant')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps per variant first')
    parser.add_argument('--batch-size', type=int, help='override train_dataloader.batch_size')
    parser.add_argument('--threads', type=int, help='torch.set_num_threads')
    parser.add_argument('--out', help='also write the figures to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction,
                        help='override config keys, e.g. train_dataloader.dataset.data_root=DIR')
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(',') if v.strip()]
    for name in args.variants:
        variant_pieces(name)
    return args


def load_config(args: argparse.Namespace, pieces: Union[bool, Dict[str, bool]]) -> Config:
    check_config_file(args.config)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(copy.deepcopy(args.cfg_options))
    if args.batch_size is not None:
        cfg.train_dataloader.batch_size = args.batch_size
    cfg.fast_path = pieces
    apply_fast_path(cfg, device_type='cpu' if not torch.cuda.is_available() else 'cuda')
    return cfg




def build_variant(cfg: Config, state: Optional[dict], device: torch.device):
    """Model (with the config's compiled loss, if any), optimizer wrapper and the model's
    initial state (the tokenizer's weights included, which the model's state dict leaves out)."""
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    if hasattr(model, 'init_weights'):
        model.init_weights()
    if state is not None:
        model.load_state_dict(state['model'])
        if state['tokenizer'] is not None:
            model.target_generator.tokenizer.load_state_dict(state['tokenizer'])
    model.to(device).train()
    for hook_cfg in cfg.get('custom_hooks') or []:
        hook = HOOKS.build(copy.deepcopy(hook_cfg))
        if isinstance(hook, CompiledLossHook):
            hook.apply(model)
    tokenizer = getattr(getattr(model, 'target_generator', None), 'tokenizer', None)
    own = dict(model=copy.deepcopy(model.state_dict()),
               tokenizer=None if tokenizer is None else copy.deepcopy(tokenizer.state_dict()))
    return model, build_optim_wrapper(model, cfg.optim_wrapper), own


def run(args: argparse.Namespace) -> Dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    flush = setup_flush_denormal(True)
    register_all_modules()
    MMLogger.get_instance('mmengine').setLevel('WARNING')
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    # the batches: drawn once, with exact mask counts, for every variant
    data_cfg = load_config(args, dict.fromkeys(FAST_PATH_PIECES, False) | dict(exact_masks=True))
    DefaultScope.get_instance(f'benchmark-fast-path-{time.time_ns()}',
                              scope_name=data_cfg.get('default_scope', 'beitlab'))
    loader = Runner.build_dataloader(data_cfg.train_dataloader, seed=0)
    batch_size = int(data_cfg.train_dataloader.batch_size)
    batches: List[Any] = []
    while len(batches) < 4:
        before = len(batches)
        batches += [b for _, b in zip(range(4 - len(batches)), loader)]
        if len(batches) == before:
            raise RuntimeError(f'{args.config}: the train dataloader yielded no batch')
    del loader
    load_start = load_average()
    variants, state, warmup_s = {}, None, {}
    for name in args.variants:
        cfg = load_config(args, variant_pieces(name))
        model, wrapper, own = build_variant(cfg, state, device)
        state = state or own
        start = time.perf_counter()
        for i in range(args.warmup):
            model.train_step(copy.copy(batches[i % len(batches)]), wrapper)
        warmup_s[name] = time.perf_counter() - start
        variants[name] = (model, wrapper)
    wall: Dict[str, List[float]] = {n: [] for n in variants}
    cpu: Dict[str, List[float]] = {n: [] for n in variants}
    for i in range(args.iters):
        for name, (model, wrapper) in variants.items():
            data = copy.copy(batches[i % len(batches)])
            c0, t0 = time.process_time(), time.perf_counter()
            model.train_step(data, wrapper)
            if device.type == 'cuda':
                torch.cuda.synchronize()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    rows, previous, first = [], None, None
    for name in variants:
        med, med_cpu = statistics.median(wall[name]), statistics.median(cpu[name])
        first = first or (med, med_cpu)
        compiled = getattr(variants[name][0], '_beitlab_compiled_loss', None)
        rows.append(dict(variant=name, median_s=med, median_cpu_s=med_cpu,
                         images_per_s=batch_size / med, vs_first=first[0] / med,
                         cpu_vs_first=first[1] / med_cpu,
                         vs_previous=None if previous is None else previous / med,
                         warmup_s=warmup_s[name],
                         compiled_steps=None if compiled is None else compiled.compiled_calls,
                         compile_fallback=None if compiled is None else compiled.fallback_reason))
        previous = med
    return dict(config=args.config, batch_size=batch_size, iters=args.iters, warmup=args.warmup,
                device=str(device), cpu=cpu_model(), threads=torch.get_num_threads(),
                torch=torch.__version__, flush_denormal=flush.message,
                loadavg_start=load_start, loadavg_end=load_average(), rows=rows)


def summary(result: Dict[str, Any]) -> str:
    table = format_table(
        [{'variant': r['variant'], 'ms/step': 1e3 * r['median_s'], 'cpu ms': 1e3 * r['median_cpu_s'],
          'images/s': r['images_per_s'], 'vs first': f"{r['vs_first']:.2f}x",
          'vs previous': '-' if r['vs_previous'] is None else f"{r['vs_previous']:.2f}x",
          'warm-up s': r['warmup_s']} for r in result['rows']],
        ['variant', 'ms/step', 'cpu ms', 'images/s', 'vs first', 'vs previous', 'warm-up s'])
    lines = [f"config {result['config']}  batch {result['batch_size']}  {result['iters']} "
             f"alternating steps per variant (medians)",
             f"machine {result['cpu']} ({result['threads']} threads), torch {result['torch']}, "
             f"load {result['loadavg_start']} -> "
             f"{result['loadavg_end']}", table]
    for r in result['rows']:
        if r['compile_fallback']:
            lines.append(f"{r['variant']}: compile fell back to eager: {r['compile_fallback']}")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    result = run(args)
    print(summary(result))
    if args.out:
        with atomic_open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    run_cli(main)
