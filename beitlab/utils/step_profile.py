"""Where one training step spends its time: ``torch.profiler`` self times in categories.

Each operator event's self time (its time minus that of the operators it calls) goes to
one category: by its own name when the name says what it is (``aten::addmm`` is a matmul,
``aten::_to_copy`` a cast), otherwise by the nearest enclosing operator or autograd node
that does (the ``aten::t`` inside ``aten::linear`` or ``AddmmBackward0`` is matmul work).
Everything inside the optimizer's ``record_function`` scopes (``Optimizer.step#...``,
``Optimizer.zero_grad#...``) is ``optimizer``. The kernels inductor generates for a
``torch.compile``d graph (``graph_0_cpp_fused_...``: fused element-wise work, norms,
softmax, casts) are ``compiled kernels``; the profiler sees them only when they were compiled
with ``torch._inductor.config.cpp.enable_kernel_profile = True``
(``TORCHINDUCTOR_CPP_ENABLE_KERNEL_PROFILE=1``), otherwise their time is in ``Python and
dispatcher``. The matrix products of a compiled graph are ordinary ``aten`` operators.
Python, the dispatcher and the autograd engine are what no operator accounts for: the
step's wall time minus the sum of the operators' self times (the profiler's own
per-operator cost lands there too).

Host (CPU) time only: on CUDA the kernels run asynchronously and their time shows up
where the host waits for them.
"""
import re
import time
from typing import Any, Callable, Iterable, Optional

from .benchmark import format_table, synchronize

__all__ = ['CATEGORIES', 'COMPILED', 'op_category', 'categorize_events', 'profile_step', 'profile_table']

PYTHON = 'Python and dispatcher'
COMPILED = 'compiled kernels'
CATEGORIES = ('matmuls', 'attention', 'convolutions', 'norms and activations',
              'casts and copies', 'optimizer', COMPILED, 'other ops', PYTHON)

# Normalised names (namespace dropped, lower case, no underscores, no Backward suffix).
_MATMUL = {'mm', 'bmm', 'addmm', 'addbmm', 'baddbmm', 'matmul', 'linear', 'addmmactivation',
           'mv', 'dot', 'einsum', 'mkldnnlinear'}
_CASTS = {'to', 'tocopy', 'copy', 'clone', 'contiguous', 'copyfrom', 'typeas'}
_NORM_ACTIVATION = ('layernorm', 'nativelayernorm', 'groupnorm', 'nativegroupnorm', 'batchnorm',
                    'nativebatchnorm', 'rmsnorm', 'fusedrmsnorm', 'gelu', 'relu', 'threshold',
                    'silu', 'tanh', 'sigmoid', 'hardtanh', 'dropout', 'nativedropout',
                    'featuredropout', 'bernoulli')
_OPTIMIZER = ('foreach', 'fusedadam', 'fusedsgd', 'lerp', 'addcmul', 'addcdiv')
_OPTIMIZER_SCOPES = ('Optimizer.step#', 'Optimizer.zero_grad#')
_NOT_OPS = ('autograd::', 'torch::autograd::', 'profiler::')
# inductor's C++ kernel names (cpp_fused_<ops>_<n>), with the graph prefix the profiler adds
_COMPILED_KERNEL = re.compile(r'^(graph_\d+_)?cpp_fused_')


def _normalise(name: str) -> str:
    base = re.split(r'::|: ', name)[-1].lower().replace('_', '')
    return re.sub(r'backward\d*$', '', base)


def op_category(name: str) -> Optional[str]:
    """The category an operator or autograd node name says, or None when it says none
    (views, allocations, element-wise arithmetic)."""
    if _COMPILED_KERNEL.match(name):
        return COMPILED
    base = _normalise(name)
    if base in _MATMUL:
        return 'matmuls'
    if 'scaleddotproduct' in base or 'attention' in base or base.startswith(
            ('softmax', 'safesoftmax')):
        return 'attention'
    if 'conv' in base:
        return 'convolutions'
    if base.startswith(_NORM_ACTIVATION):
        return 'norms and activations'
    if base in _CASTS:
        return 'casts and copies'
    if base.startswith(_OPTIMIZER):
        return 'optimizer'
    return None


def _is_op(event: Any) -> bool:
    if _COMPILED_KERNEL.match(event.name):
        return True
    return (not getattr(event, 'is_user_annotation', False) and '::' in event.name
            and not event.name.startswith(_NOT_OPS))


def _category(event: Any) -> str:
    chain = []
    node = event
    while node is not None:
        if node.name.startswith(_OPTIMIZER_SCOPES):
            return 'optimizer'
        chain.append(node)
        node = node.cpu_parent
    for node in chain:
        category = op_category(node.name)
        if category is not None:
            return category
    return 'other ops'


def categorize_events(events: Iterable[Any], wall_s: float, top: int = 3) -> dict[str, Any]:
    """Self times of ``torch.profiler`` events (``prof.events()``) by category.

    Only the thread that spent the most operator time (the one that ran the step) counts.

    Returns:
        ``{'wall_ms', 'categories': [{'category', 'ms', 'share', 'calls', 'top_ops':
        [[name, ms], ...]}, ...] in CATEGORIES order, 'top_ops': the 15 operators with
        the most self time}``; shares are of ``wall_s`` and sum to 1.
    """
    ops = [e for e in events if _is_op(e)]
    per_thread: dict[int, float] = {}
    for e in ops:
        per_thread[e.thread] = per_thread.get(e.thread, 0.0) + e.self_cpu_time_total
    main = max(per_thread, key=per_thread.get) if per_thread else None
    wall_ms = wall_s * 1e3
    ms = dict.fromkeys(CATEGORIES, 0.0)
    calls = dict.fromkeys(CATEGORIES, 0)
    by_op: dict[str, dict[str, float]] = {c: {} for c in CATEGORIES}
    for e in ops:
        if e.thread != main:
            continue
        category = _category(e)
        self_ms = e.self_cpu_time_total / 1e3
        ms[category] += self_ms
        calls[category] += 1
        by_op[category][e.name] = by_op[category].get(e.name, 0.0) + self_ms
    ms[PYTHON] = max(wall_ms - sum(ms.values()), 0.0)
    total = max(sum(ms.values()), wall_ms, 1e-9)

    def ranked(table: dict[str, float], n: int) -> list[list[Any]]:
        return [[name, round(t, 3)] for name, t in
                sorted(table.items(), key=lambda kv: -kv[1])[:n]]
    categories = [dict(category=c, ms=ms[c], share=ms[c] / total, calls=calls[c],
                       top_ops=ranked(by_op[c], top)) for c in CATEGORIES]
    every_op = {name: t for table in by_op.values() for name, t in table.items()}
    return dict(wall_ms=wall_ms, categories=categories, top_ops=ranked(every_op, 15))


def profile_step(step: Callable[[], Any], device: Any = 'cpu', top: int = 3) -> dict[str, Any]:
    """Run ``step`` once under ``torch.profiler`` (CPU activity) and categorise its
    operators (:func:`categorize_events`, ``top`` operators per category); the wall time
    includes the profiler's cost."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        step()
        synchronize(device)
        wall_s = time.perf_counter() - start
    return categorize_events(prof.events(), wall_s, top)


def profile_table(profile: dict[str, Any]) -> str:
    """The categories of :func:`categorize_events` as a text table with the top operators."""
    rows = [{'category': c['category'], 'ms': c['ms'], '% of step': 100 * c['share'],
             'calls': c['calls'] if c['category'] != PYTHON else None,
             'top operators (ms)': ', '.join(f'{name.split("::")[-1]} {t:.1f}'
                                             for name, t in c['top_ops']) or '-'}
            for c in profile['categories']]
    return format_table(rows, ['category', 'ms', '% of step', 'calls', 'top operators (ms)'])
