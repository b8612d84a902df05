"""Time one BEiT attention layer in each attention form, to choose ``attn_impl='auto'``.

    python tools/analysis_tools/benchmark_attention.py [--reps 30] [--warmup 3]
        [--shapes vit-b,fmnist] [--dtypes fp32,bf16] [--device cpu|cuda] [--threads N]
        [--out result.json]

One :class:`~beitlab.models.backbones.beit_layers.BEiTAttention` layer (q/v-biased qkv
projection, attention with a shared relative position bias looked up from its table, output
projection), for each attention case of :data:`beitlab.ops.attention.ATTN_CASES`:

- ``bias_grad``: forward + backward, the bias table learns (pre-training, fine-tuning);
- ``frozen_bias``: forward + backward, the table is frozen;
- ``no_bias``: forward + backward without a relative position bias;
- ``inference``: forward under ``torch.no_grad``.

Forms: ``sdpa`` and ``explicit`` as in :mod:`beitlab.ops.attention`, and, under a low-precision
autocast, ``explicit-sm32`` (the explicit form with its softmax in fp32). The forms alternate
within every repetition, so a neighbour's load affects them alike; each figure is the
median over ``--reps`` repetitions after ``--warmup`` untimed ones: ``ms`` of wall-clock
time and ``cpu_ms`` of this process's CPU time (all its threads), which on a loaded machine
stays closer to what the call costs. ``vs_sdpa`` is the form's median wall-clock time over
that of ``sdpa`` in the same row group (``cpu_vs_sdpa`` the same for CPU time); ``auto``
marks the form that ``attn_impl='auto'`` takes there.

The ``frozen_bias`` time of ``sdpa`` is also a lower bound for a bias gradient computed
beside a fused SDPA (fused forward and backward with the bias as a constant mask, plus the
extra products for the bias gradient): where it exceeds ``explicit`` in ``bias_grad``,
such a custom function cannot win.

Shapes: ``vit-b`` = batch 8, 197 tokens, 12 heads x 64 (ViT-B/16 at 224 px);
``fmnist`` = batch 64, 65 tokens, 3 heads x 64 (``configs/beit/beit_vit-fmnist_fashion-mnist.py``:
192 dims, 32 px images in 4 px patches, batch 64).
"""
import argparse
import json
import os.path as osp
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.models.backbones.beit_layers import BEiTAttention  # noqa: E402
from beitlab.models.backbones.rel_pos_bias import RelativePositionBias  # noqa: E402
from beitlab.ops.attention import (  # noqa: E402
    ATTN_CASES,
    explicit_attention,
    select_attn_impl,
)
from beitlab.utils.atomic_io import atomic_open  # noqa: E402
from beitlab.utils.benchmark import cpu_model, format_table, load_average, synchronize  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402

# name -> (batch, patch grid side, heads, head dims); tokens = 1 + side^2 (CLS + patches)
SHAPES: Dict[str, tuple] = {'vit-b': (8, 14, 12, 64), 'fmnist': (64, 8, 3, 64)}
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
Core = Callable[[Tensor, Tensor, Tensor, Optional[Tensor]], Tensor]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Time BEiT attention forms')
    parser.add_argument('--reps', type=int, default=30, help='timed repetitions per form')
    parser.add_argument('--warmup', type=int, default=3, help='untimed repetitions first')
    parser.add_argument('--shapes', default='vit-b,fmnist', help=f'comma list of {sorted(SHAPES)}')
    parser.add_argument('--dtypes', default='fp32,bf16',
                        help=f'comma list of {sorted(DTYPES)} (low precision = autocast)')
    parser.add_argument('--cases', default=','.join(ATTN_CASES), help=f'comma list of {ATTN_CASES}')
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--threads', type=int, help='torch intra-op threads (default: torch\'s)')
    parser.add_argument('--out', help='also write the figures to this JSON file')
    args = parser.parse_args(argv)
    for flag, value, known in (('--shapes', args.shapes, SHAPES), ('--dtypes', args.dtypes, DTYPES),
                               ('--cases', args.cases, ATTN_CASES)):
        for item in value.split(','):
            if item not in known:
                parser.error(f'{flag}: {item!r} is not one of {sorted(known)}')
    if args.reps < 1 or args.warmup < 0:
        parser.error(f'--reps must be >= 1 and --warmup >= 0, got {args.reps} and {args.warmup}')
    return args




def forms_for(dtype: torch.dtype) -> Dict[str, Core]:
    """The attention cores to compare; ``explicit-sm32`` only where it differs from ``explicit``."""
    forms: Dict[str, Core] = {
        'sdpa': lambda q, k, v, b: F.scaled_dot_product_attention(
            q, k, v, attn_mask=None if b is None else b.to(q.dtype)),
        'explicit': lambda q, k, v, b: explicit_attention(q, k, v, b),
    }
    if dtype != torch.float32:
        forms['explicit-sm32'] = lambda q, k, v, b: explicit_attention(
            q, k, v, b, softmax_dtype=torch.float32)
    return forms


def layer_forward(attn: BEiTAttention, x: Tensor, bias: Optional[Tensor], core: Core) -> Tensor:
    """``attn``'s forward (no ``query_index``) with ``core`` as the attention; checked
    against the module itself in :func:`check_layer_forward`."""
    b, t, d = x.shape
    qkv_bias = torch.cat([attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias])
    qkv = F.linear(x, attn.qkv.weight, qkv_bias)
    q, k, v = qkv.reshape(b, t, 3, attn.num_heads, attn.head_dims).permute(2, 0, 3, 1, 4)
    out = core(q, k, v, None if bias is None else bias.to(x.dtype).unsqueeze(0))
    return attn.proj(out.transpose(1, 2).reshape(b, t, d))


def check_layer_forward(attn: BEiTAttention, rel: RelativePositionBias, x: Tensor) -> None:
    """The timed forward equals the module's (fp32), so the figures describe the model."""
    grid = rel.grid
    for impl in ('sdpa', 'explicit'):
        attn.attn_impl = impl
        ref = attn(x, grid, rel(grid))
        mine = layer_forward(attn, x, rel(grid), forms_for(torch.float32)[impl])
        if not torch.allclose(ref, mine, rtol=1e-4, atol=1e-5):
            raise RuntimeError(f'the benchmark layer differs from BEiTAttention for {impl!r} by '
                               f'{(ref - mine).abs().max().item():.3g}; update layer_forward')


def make_step(attn: BEiTAttention, rel: RelativePositionBias, x: Tensor, case: str,
              dtype: torch.dtype, core: Core, device: torch.device) -> Callable[[], None]:
    """One timed call: forward (under autocast for a low-precision dtype), and backward
    unless ``case == 'inference'``."""
    amp = dtype != torch.float32
    grid = rel.grid

    def step() -> None:
        with torch.set_grad_enabled(case != 'inference'), \
                torch.autocast(device.type, dtype=dtype, enabled=amp):
            bias = None if case == 'no_bias' else rel(grid)
            out = layer_forward(attn, x, bias, core)
        if case != 'inference':
            out.float().sum().backward()

    return step


def time_group(steps: Dict[str, Callable[[], None]], reps: int, warmup: int,
               device: torch.device) -> Dict[str, Tuple[float, float]]:
    """Median wall-clock and CPU seconds of each step, the steps alternating within every
    repetition."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: Dict[str, List[Tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(reps):
        for name, step in steps.items():
            synchronize(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            step()
            synchronize(device)
            times[name].append((time.perf_counter() - start, time.process_time() - cpu_start))
    return {name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
            for name, t in times.items()}


def run(args: argparse.Namespace) -> List[Dict[str, Any]]:
    device = torch.device(args.device)
    rows: List[Dict[str, Any]] = []
    for shape_name in args.shapes.split(','):
        batch, side, heads, head_dims = SHAPES[shape_name]
        dims, tokens = heads * head_dims, 1 + side * side
        torch.manual_seed(0)
        attn = BEiTAttention(dims, heads).to(device)
        rel = RelativePositionBias((side, side), heads).to(device)
        with torch.no_grad():
            for p in (attn.q_bias, attn.v_bias, rel.relative_position_bias_table):
                p.normal_(std=0.5)
        x = torch.randn(batch, tokens, dims, device=device, requires_grad=True)
        check_layer_forward(attn, rel, x.detach())
        for dtype_name in args.dtypes.split(','):
            dtype = DTYPES[dtype_name]
            for case in args.cases.split(','):
                rel.relative_position_bias_table.requires_grad_(case == 'bias_grad')
                forms = forms_for(dtype)
                steps = {name: make_step(attn, rel, x, case, dtype, core, device)
                         for name, core in forms.items()}
                medians = time_group(steps, args.reps, args.warmup, device)
                auto = select_attn_impl(device.type, dtype, case)
                wall0, cpu0 = medians['sdpa']
                for name, (wall, cpu) in medians.items():
                    rows.append(dict(shape=shape_name, tokens=tokens, dtype=dtype_name, case=case,
                                     form=name, ms=wall * 1e3, cpu_ms=cpu * 1e3,
                                     vs_sdpa=wall / wall0, cpu_vs_sdpa=cpu / cpu0,
                                     auto='*' if name == auto else ''))
                attn.zero_grad(set_to_none=True)
                rel.zero_grad(set_to_none=True)
                x.grad = None
        rel.relative_position_bias_table.requires_grad_(True)
    return rows


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = load_average()
    info = dict(cpu=cpu_model(), torch=torch.__version__, threads=torch.get_num_threads(),
                cpu_capability=torch.backends.cpu.get_cpu_capability(), device=args.device,
                reps=args.reps, warmup=args.warmup, loadavg=' '.join(map(str, load)) if load else '?')
    if args.device.startswith('cuda'):
        info['gpu'] = torch.cuda.get_device_name(torch.device(args.device))
    print(' '.join(f'{k}={v}' for k, v in info.items()))
    rows = run(args)
    print(format_table(rows, ['shape', 'tokens', 'dtype', 'case', 'form', 'ms', 'vs_sdpa',
                              'cpu_ms', 'cpu_vs_sdpa', 'auto']))
    if args.out:
        with atomic_open(args.out, 'w') as f:
            json.dump(dict(machine=info, rows=rows), f, indent=1)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    run_cli(main)
