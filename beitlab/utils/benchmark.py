"""Measurement helpers for ``tools/analysis_tools/benchmark.py`` and the peer comparison.

Everything here is device-agnostic (CPU or CUDA) and free of third-party
dependencies: peak CPU memory comes from ``/proc/self/status`` (``VmHWM``), which
``/proc/self/clear_refs`` resets between phases; FLOPs come from
:class:`torch.utils.flop_counter.FlopCounterMode`, extended with the CPU fused
attention kernels that it does not know.
"""
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Optional

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

__all__ = [
    'PhaseResult', 'synchronize', 'time_iterations', 'measure_matmul_rate', 'count_flops',
    'peak_rss_bytes', 'reset_peak_rss', 'reset_peak_memory', 'peak_memory_bytes',
    'format_table', 'step_drift', 'cpu_model', 'load_average', 'DRIFT_WINDOW', 'DRIFT_TOLERANCE'
]

# step_drift: the first and last this-many timed iterations, flagged beyond this change.
DRIFT_WINDOW = 10
DRIFT_TOLERANCE = 0.10


def step_drift(seconds: list[float], window: int = DRIFT_WINDOW,
               tolerance: float = DRIFT_TOLERANCE) -> Optional[dict[str, Any]]:
    """Mean of the last ``window`` iteration times over the mean of the first ``window``.

    A step that slows down while the run goes on (subnormal values accumulating without
    flush-to-zero, a neighbour's load, thermal throttling) shows a ratio above 1 that the
    median hides. With fewer than ``2 * window`` iterations each window is half of them
    (the middle one left out when odd); None for fewer than 2.

    Returns:
        ``{'window', 'first_mean_s', 'last_mean_s', 'ratio', 'flagged'}`` with ``flagged``
        when the ratio is more than ``tolerance`` away from 1 (either way).
    """
    n = min(window, len(seconds) // 2)
    if n < 1:
        return None
    first = sum(seconds[:n]) / n
    last = sum(seconds[-n:]) / n
    ratio = last / first if first > 0 else float('inf')
    return dict(window=n, first_mean_s=first, last_mean_s=last, ratio=ratio,
                flagged=abs(ratio - 1) > tolerance)


@dataclass
class PhaseResult:
    """Timing of one benchmark phase: per-iteration seconds after warm-up."""

    name: str
    images_per_iter: int
    seconds: list[float]
    peak_memory_bytes: Optional[int] = None
    extra: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def images_per_s(self) -> float:
        """Throughput from the median iteration (robust to a noisy neighbour)."""
        return self.images_per_iter / self.median_s

    @property
    def mean_images_per_s(self) -> float:
        return self.images_per_iter * len(self.seconds) / sum(self.seconds)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(median_s=self.median_s, images_per_s=self.images_per_s,
                   mean_images_per_s=self.mean_images_per_s,
                   min_s=min(self.seconds), max_s=max(self.seconds))
        if self.cpu_seconds:
            out['median_cpu_s'] = statistics.median(self.cpu_seconds)
        out['drift'] = step_drift(self.seconds)
        return out


def synchronize(device: torch.device | str) -> None:
    """Wait for queued kernels so that wall-clock times are real (no-op on CPU)."""
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def time_iterations(name: str, step: Callable[[], Any], *, iters: int, warmup: int,
                    images_per_iter: int, device: torch.device | str = 'cpu') -> PhaseResult:
    """Run ``step`` ``warmup`` times untimed, then ``iters`` times timed one by one.

    Peak memory is reset before the warm-up, so it covers every call of ``step``.
    Besides wall-clock seconds, the CPU seconds of this process (all its threads,
    not the dataloader workers) are recorded: on a loaded machine they stay close
    to what the step costs, where wall-clock time grows with the neighbours' load.
    """
    if iters < 1:
        raise ValueError(f'iters must be >= 1, got {iters}')
    reset_peak_memory(device)
    for _ in range(warmup):
        step()
    synchronize(device)
    seconds, cpu_seconds = [], []
    for _ in range(iters):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    return PhaseResult(name, images_per_iter, seconds, peak_memory_bytes(device),
                       cpu_seconds=cpu_seconds)


def measure_matmul_rate(device: torch.device | str = 'cpu', dtype: torch.dtype = torch.float32,
                        size: Optional[int] = None, repeats: int = 5) -> dict[str, float]:
    """Dense ``size x size`` matrix-multiply rate of this machine, in FLOP/s.

    The reference for a utilisation ratio: ``2 * size**3`` FLOPs per product, one
    product per timing, the median and the best of ``repeats`` timings reported
    after one warm-up product. The default size (2048 on CPU, 8192 on CUDA) is
    large enough to reach the BLAS library's steady rate.
    """
    device = torch.device(device)
    size = size or (8192 if device.type == 'cuda' else 2048)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.mm(a, b)
    synchronize(device)
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        torch.mm(a, b)
        synchronize(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    flops = 2.0 * size ** 3
    return dict(size=size, dtype=str(dtype).replace('torch.', ''),
                flops_per_s=flops / statistics.median(times), best_flops_per_s=flops / min(times),
                flops_per_cpu_s=flops / max(statistics.median(cpu_times), 1e-9))


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args,
                            out_shape=None, **kwargs) -> int:
    # The gradients of the two attention products are four products of the same
    # size (twice the forward); torch's CUDA formula adds a fifth for the scores
    # that a flash kernel recomputes, which is not arithmetic the method needs.
    return 2 * sdpa_flop_count(query_shape, key_shape, value_shape)


def _extra_flop_formulas() -> dict[Any, Callable]:
    # FlopCounterMode (torch 2.13) counts the CUDA fused-attention kernels but not
    # the CPU flash kernel that scaled_dot_product_attention takes on CPU, so the
    # attention matmuls would silently drop out of a CPU count.
    aten = torch.ops.aten
    mapping = {}
    for name, formula in (('_scaled_dot_product_flash_attention_for_cpu', _cpu_sdpa_flop),
                          ('_scaled_dot_product_flash_attention_for_cpu_backward',
                           _cpu_sdpa_backward_flop)):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = formula
    return mapping


def count_flops(fn: Callable[[], Any]) -> dict[str, Any]:
    """FLOPs of one call of ``fn`` (matmuls, convolutions, attention; forward and backward).

    Returns ``{'total': int, 'by_op': {op name: int}}``. Element-wise work
    (normalisation, activations, the optimiser update) is not counted: the
    figure is the dense arithmetic the computation needs, the part a matrix
    engine can run at its peak rate.
    """
    counter = FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas())
    with counter:
        fn()
    by_op: dict[str, int] = {}
    for op, n in counter.get_flop_counts().get('Global', {}).items():
        by_op[str(op)] = int(n)
    return dict(total=int(counter.get_total_flops()), by_op=by_op)


def cpu_model() -> str:
    """``model name`` from ``/proc/cpuinfo`` (the platform's processor string elsewhere):
    the CPU every benchmark names with its figures."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def load_average() -> Optional[list[float]]:
    """The 1, 5 and 15-minute load averages, rounded to 0.01, or None where the platform has
    none: every benchmark records them beside its figures, since a busy machine slows a run."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _read_status_kb(key: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_bytes() -> Optional[int]:
    """Peak resident set size of this process (``VmHWM``), or None off Linux."""
    kb = _read_status_kb('VmHWM')
    return None if kb is None else kb * 1024


def reset_peak_rss() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0; silently ignored elsewhere)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def reset_peak_memory(device: torch.device | str) -> None:
    """Reset the peak-memory counter of ``device`` (CUDA allocator or CPU RSS)."""
    if torch.device(device).type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak_rss()


def peak_memory_bytes(device: torch.device | str) -> Optional[int]:
    """CUDA ``max_memory_allocated`` on GPU, process peak RSS on CPU."""
    if torch.device(device).type == 'cuda':
        return int(torch.cuda.max_memory_allocated(device))
    return peak_rss_bytes()


def _fmt(value: Any) -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.3g}' if abs(value) < 1e3 else f'{value:,.0f}'
    return str(value)


def format_table(rows: Iterable[dict[str, Any]], columns: list[str]) -> str:
    """A plain fixed-width text table (no third-party dependency)."""
    rows = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    line = '  '.join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, '  '.join('-' * w for w in widths)]
    out += ['  '.join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    return '\n'.join(out)
