"""beitlab's BEiT MIM training step side by side with Hugging Face ``transformers``.

    python tools/analysis_tools/benchmark_peers.py [--config configs/beit/mim_vit-b.py]
        [--batch-size 8] [--num-masked 75] [--iters 10] [--warmup 2] [--amp bf16]
        [--with-tokenizer] [--out peers.json]

Both models are built at the architecture of the config's backbone and head
(equal parameter counts are asserted), get the same images, the same masks
(exactly ``--num-masked`` patches per image) and the same target tokens, and
use the same optimizer (AdamW, lr 1.5e-3, weight decay 0.05). One timed step is
forward, MIM cross-entropy, backward and the optimizer update; the two
frameworks alternate step by step (A B A B ...) so that a noisy neighbour or a
clock change hits both alike. ``--with-tokenizer`` adds the config's frozen
tokenizer (target generator) to both steps (the same module for both).

The ratio reported is HF median step time / beitlab median step time (> 1 means
beitlab is faster). ``transformers`` is optional and not installed by
``tools/install.sh``. mmpretrain is not compared: its package import needs
torchvision, which does not install beside the CPU torch 2.13 used here.
"""
import argparse
import json
import os.path as osp
import statistics
import sys
import time
from typing import Any, Callable, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope
from torch import nn

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.registry import MODELS  # noqa: E402
from beitlab.utils.atomic_io import atomic_open  # noqa: E402
from beitlab.utils.benchmark import count_flops, load_average, measure_matmul_rate, synchronize  # noqa: E402
from beitlab.utils.cli import HintedError, run_cli  # noqa: E402
from beitlab.utils.denormals import add_flush_denormal_arg, setup_flush_denormal  # noqa: E402
from beitlab.utils.runtime import check_config_file  # noqa: E402
from beitlab.utils.setup_env import register_all_modules  # noqa: E402

DEFAULT_CONFIG = 'configs/beit/mim_vit-b.py'


def print_profiles(steps: dict[str, Callable[[], float]], rows: int = 15) -> None:
    """One more step of each framework under ``torch.profiler``: the operators by self
    time, to see how much of the step is matrix products and what the rest is."""
    from torch.profiler import ProfilerActivity, profile
    for name, step in steps.items():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        print(f'--- {name}: one step, operators by self CPU time')
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=rows))


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='beitlab vs transformers BEiT MIM step')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='beitlab BEiT config whose model.backbone/head set the architecture')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--num-masked', type=int, default=75, help='masked patches per image')
    parser.add_argument('--iters', type=int, default=10, help='timed steps per framework')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--amp', choices=['none', 'bf16'], default='none')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--hf-attn', default='sdpa', choices=['sdpa', 'eager'],
                        help='transformers attention implementation')
    parser.add_argument('--with-tokenizer', action='store_true',
                        help="run the config's tokenizer inside both steps")
    parser.add_argument('--fused-adamw', action='store_true',
                        help='fused AdamW kernel for both frameworks')
    parser.add_argument('--compile', choices=['none', 'beitlab', 'both'], default='none',
                        help='torch.compile every Transformer block of beitlab (CompileHook) '
                             'or of both frameworks before timing')
    parser.add_argument('--profile', action='store_true',
                        help='after timing, print a torch.profiler table of one step of each')
    parser.add_argument('--threads', type=int)
    add_flush_denormal_arg(parser)
    parser.add_argument('--out', help='JSON output file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


class MissingPackageError(HintedError, ImportError):
    """An optional package this tool needs is not installed."""


def import_transformers():
    try:
        import transformers
        from transformers import BeitConfig, BeitForMaskedImageModeling
    except ImportError as e:
        raise MissingPackageError(
            f'this tool needs the optional package `transformers` ({e})',
            ['install it into the environment without touching torch: `.venv/bin/pip install '
             '--no-deps transformers`, then `.venv/bin/pip install huggingface_hub tokenizers '
             'safetensors regex` (it is deliberately not part of tools/install.sh)']) from e
    return transformers, BeitConfig, BeitForMaskedImageModeling


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def hf_config_like(backbone: nn.Module, vocab_size: int, drop_path_rate: float,
                   attn_impl: str):
    """A transformers ``BeitConfig`` with beitlab's architecture.

    ``use_mean_pooling=True`` removes ``BeitModel.layernorm`` so that the MIM
    model's own ``layernorm`` is the single final norm, as in official BEiT and
    beitlab (``backbone.norm``).
    """
    _, BeitConfig, _ = import_transformers()
    first = backbone.blocks[0]
    gamma = getattr(first, 'gamma_1', None)
    return BeitConfig(
        vocab_size=vocab_size, hidden_size=backbone.embed_dims,
        num_hidden_layers=backbone.num_layers, num_attention_heads=backbone.num_heads,
        intermediate_size=backbone.feedforward_channels, hidden_act='gelu',
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        layer_norm_eps=backbone.norm.eps, image_size=backbone.img_size[0],
        patch_size=backbone.patch_size, num_channels=backbone.in_channels,
        use_mask_token=True, use_absolute_position_embeddings=backbone.pos_embed is not None,
        use_relative_position_bias=first.attn.relative_position_bias_table is not None,
        use_shared_relative_position_bias=backbone.rel_pos_bias is not None,
        layer_scale_init_value=float(gamma.detach()[0]) if gamma is not None else 0.0,
        drop_path_rate=drop_path_rate, use_mean_pooling=True,
        attn_implementation=attn_impl)


def make_masks(batch: int, grid: tuple[int, int], num_masked: int, gen: torch.Generator):
    """[B, h, w] bool with exactly ``num_masked`` True per image (random positions)."""
    n = grid[0] * grid[1]
    if not 0 < num_masked <= n:
        raise ValueError(f'--num-masked={num_masked} must be in [1, {n}] for a {grid} grid')
    mask = torch.zeros(batch, n, dtype=torch.bool)
    for i in range(batch):
        mask[i, torch.randperm(n, generator=gen)[:num_masked]] = True
    return mask.view(batch, *grid)


def alternate(steps: dict[str, Callable[[], Any]], iters: int, warmup: int,
              device: torch.device) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Warm every step, then time them in turn, one step each per round.

    Returns wall-clock and process CPU seconds per step (CPU seconds are the
    fairer figure on a machine shared with other jobs).
    """
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    times: dict[str, list[float]] = {k: [] for k in steps}
    cpu_times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(iters):
        for name, fn in steps.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(time.process_time() - cpu_start)
    return times, cpu_times


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    args = parse_args(argv)
    transformers, _, BeitForMaskedImageModeling = import_transformers()
    register_all_modules()
    check_config_file(args.config)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    DefaultScope.get_instance(f'peers-{time.time_ns()}',
                              scope_name=cfg.get('default_scope', 'beitlab'))
    if args.threads:
        torch.set_num_threads(args.threads)
    flush_denormal = setup_flush_denormal(args.flush_denormal)  # before the first computation
    device = torch.device(args.device)
    torch.manual_seed(0)

    ours = MODELS.build(cfg.model).to(device).train()
    backbone, head = ours.backbone, ours.head
    drop_path = float(cfg.model.backbone.get('drop_path_rate', 0.0))
    hf_cfg = hf_config_like(backbone, head.vocab_size, drop_path, args.hf_attn)
    hf = BeitForMaskedImageModeling(hf_cfg).to(device).train()

    n_ours = num_params(backbone) + num_params(head)
    n_hf = num_params(hf)
    if n_ours != n_hf:
        raise AssertionError(f'architectures differ: beitlab backbone+head has {n_ours:,} '
                             f'parameters, transformers BeitForMaskedImageModeling {n_hf:,}')

    gen = torch.Generator().manual_seed(0)
    B = args.batch_size
    H, W = backbone.img_size
    grid = backbone.grid
    img = torch.randn(B, 3, H, W, generator=gen).to(device)
    mask = make_masks(B, grid, args.num_masked, gen).to(device)          # [B, h, w]
    flat_mask = mask.flatten(1)                                          # [B, N]
    vocab = head.vocab_size
    tokens = torch.randint(0, vocab, (B, grid[0] * grid[1]), generator=gen).to(device)
    tok_view = None
    tg = ours.target_generator
    if args.with_tokenizer:
        tok_size = cfg.get('benchmark_tokenizer_size', None) or \
            grid[0] * int(getattr(tg.tokenizer, 'downsample', 8))
        tok_view = torch.randn(B, 3, tok_size, tok_size, generator=gen).to(device)

    if args.compile != 'none':
        from beitlab.engine.hooks.compile_hook import compile_modules
        compile_modules(ours, 'backbone.blocks')
        if args.compile == 'both':
            compile_modules(hf, 'beit.encoder.layer')

    opt_kwargs = dict(lr=1.5e-3, betas=(0.9, 0.999), weight_decay=0.05)
    if args.fused_adamw:
        opt_kwargs['fused'] = True
    ours_params = [p for p in list(backbone.parameters()) + list(head.parameters())
                   if p.requires_grad]
    opt_ours = torch.optim.AdamW(ours_params, **opt_kwargs)
    opt_hf = torch.optim.AdamW(hf.parameters(), **opt_kwargs)
    amp = args.amp == 'bf16'

    def targets() -> torch.Tensor:
        if tok_view is None:
            return tokens
        return tg(tok_view, patch_grid=grid)

    def step_ours() -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            t = targets()
            feats = backbone.forward_masked(img, mask)   # as BEiT.loss: [M, D]
            loss = head.loss(feats, t, flat_mask)['loss']
        opt_ours.zero_grad(set_to_none=True)
        loss.backward()
        opt_ours.step()
        return float(loss.detach())

    def step_hf() -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            t = targets()
            out = hf(pixel_values=img, bool_masked_pos=flat_mask, labels=t[flat_mask])
            loss = out.loss
        opt_hf.zero_grad(set_to_none=True)
        loss.backward()
        opt_hf.step()
        return float(loss.detach())

    steps = {'beitlab': step_ours, 'transformers': step_hf}

    flops = {name: count_flops(fn)['total'] for name, fn in steps.items()}
    times, cpu_times = alternate(steps, args.iters, args.warmup, device)
    if args.profile:
        print_profiles(steps)
    matmul = measure_matmul_rate(device, torch.bfloat16 if amp else torch.float32)

    res: dict[str, Any] = dict(
        config=args.config, device=str(device), batch_size=B, num_masked=args.num_masked,
        amp=args.amp, with_tokenizer=args.with_tokenizer, fused_adamw=args.fused_adamw,
        compile=args.compile,
        iters=args.iters,
        warmup=args.warmup, params=n_ours, hf_attn=args.hf_attn,
        versions=dict(torch=torch.__version__, transformers=transformers.__version__),
        torch_threads=torch.get_num_threads(), matmul=matmul, frameworks={},
        flush_denormal=dict(enabled=flush_denormal.requested, holds=flush_denormal.holds))
    for name, ts in times.items():
        med, med_cpu = statistics.median(ts), statistics.median(cpu_times[name])
        res['frameworks'][name] = dict(
            seconds=ts, median_s=med, images_per_s=B / med, cpu_seconds=cpu_times[name],
            median_cpu_s=med_cpu, flops_per_step=flops[name],
            achieved_flops_per_s=flops[name] / med,
            utilisation=flops[name] / med / matmul['flops_per_s'],
            utilisation_cpu_time=flops[name] / med_cpu / matmul['flops_per_cpu_s'])
    ours_med = res['frameworks']['beitlab']['median_s']
    for name in steps:
        if name != 'beitlab':
            res[f'speedup_vs_{name}'] = res['frameworks'][name]['median_s'] / ours_med
            res[f'cpu_time_speedup_vs_{name}'] = (res['frameworks'][name]['median_cpu_s'] /
                                                  res['frameworks']['beitlab']['median_cpu_s'])
    if (load := load_average()) is not None:
        res['loadavg_end'] = load

    print(f"{args.config}: {n_ours:,} parameters, batch {B}, {args.num_masked} masked "
          f"patches/image, amp {args.amp}, compile {args.compile}, "
          f"tokenizer {'in' if args.with_tokenizer else 'out'}, "
          f"{torch.get_num_threads()} threads, matmul {matmul['flops_per_s'] / 1e9:.1f} GFLOP/s")
    print(f'  {flush_denormal.message}')
    for name, r in res['frameworks'].items():
        print(f"  {name:13s} {r['median_s']:.3f} s/step ({r['median_cpu_s']:.2f} CPU s)  "
              f"{r['images_per_s']:.2f} images/s  "
              f"{r['flops_per_step'] / 1e9:.1f} GFLOP/step  "
              f"{100 * r['utilisation']:.0f}% of matmul rate "
              f"({100 * r['utilisation_cpu_time']:.0f}% per CPU-second)")
    for name in steps:
        if name != 'beitlab':
            print(f"  beitlab speed-up vs {name}: {res[f'speedup_vs_{name}']:.3f}x wall-clock, "
                  f"{res[f'cpu_time_speedup_vs_{name}']:.3f}x CPU time")
    if args.out:
        with atomic_open(args.out, 'w') as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == '__main__':
    run_cli(main)
