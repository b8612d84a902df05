"""Flush-to-zero (FTZ) and denormals-are-zero (DAZ) in every CPU thread that runs torch ops.

Subnormal floats (|x| < 1.18e-38 in float32) take a slow microcode path on x86. A BEiT
pre-training run produces them (small softmax probabilities, tiny gradients), and a step
slows down as their share grows. With FTZ a subnormal result becomes 0 and with DAZ a
subnormal input is read as 0, at full speed.

Both modes are bits of the MXCSR register, which is per thread. ``torch.set_flush_denormal``
sets them in the calling thread only. Threads inherit the creating thread's floating-point
environment (``pthread_create``), so setting the bits before the first parallel op also
covers the OpenMP workers that op creates. Once the pool exists, its workers keep their
own, unset MXCSR. :func:`set_flush_to_zero` therefore also makes every thread of the
calling thread's OpenMP team load the calling thread's environment: it runs ``fesetenv``
(C library) as the body of one OpenMP parallel region (``GOMP_parallel``, looked up through
torch's own extension module, so it is the OpenMP runtime torch's ops and MKL/oneDNN use).
:func:`subnormal_survivors` checks the result with a probe.

Threads created later (a larger ``torch.set_num_threads``, the inter-op pool, Python
threads) inherit the bits from the thread that creates them. Data-loader workers forked
from the main thread copy its environment; beitlab's transforms do image arithmetic in which
subnormals do not arise, so the workers are not probed.
"""
import argparse
import ctypes
import logging
from typing import NamedTuple

import torch

__all__ = ['set_flush_to_zero', 'enable_flush_to_zero', 'flush_to_zero_holds',
           'subnormal_survivors', 'add_flush_denormal_arg', 'setup_flush_denormal',
           'FlushDenormalStatus']

# float32 with bit pattern 0x00400000: 2**-127 ~ 5.9e-39, a subnormal. Built from its bits
# (an int32 tensor viewed as float32): converting the float 5.9e-39 to float32 in a thread
# with FTZ would already give 0.
_SUBNORMAL_BITS = 0x00400000
# at::internal::GRAIN_SIZE: at::parallel_for hands each thread at least this many elements.
_GRAIN_SIZE = 32768


def subnormal_survivors() -> list[int]:
    """How many subnormal products survive in each intra-op thread's share of a probe.

    The probe multiplies ``T * 4 * 32768`` float32 subnormals by 1.0 in one element-wise
    kernel (``T = torch.get_num_threads()``); at::parallel_for splits it into ``T`` equal
    contiguous shares, share ``i`` on thread ``i`` of the team. Where FTZ or DAZ holds the
    product is 0, elsewhere it is the subnormal itself. The products are read as int32
    bits: comparing floats with 0 would itself count subnormals as 0 in a DAZ thread.

    Returns:
        ``T`` counts, one per share (each ``0 <= count <= 4 * 32768``); all 0 when FTZ/DAZ
        hold in every thread.
    """
    threads = torch.get_num_threads()
    n = threads * 4 * _GRAIN_SIZE
    subnormals = torch.full((n,), _SUBNORMAL_BITS, dtype=torch.int32).view(torch.float32)
    bits = torch.mul(subnormals, torch.ones(n)).view(torch.int32)
    return [int(share.ne(0).sum()) for share in bits.chunk(threads)]


def flush_to_zero_holds() -> bool:
    """True when subnormals become 0 in the calling thread and all its intra-op threads."""
    return not any(subnormal_survivors())


def _copy_environment_to_openmp_team() -> bool:
    """Make every thread of the calling thread's OpenMP team load this thread's
    floating-point environment; False when the OpenMP runtime or the C library's
    ``fegetenv`` / ``fesetenv`` cannot be reached (non-OpenMP builds, non-glibc systems)."""
    if not torch.backends.openmp.is_available():
        return False
    try:
        # dlsym through torch's extension module searches the libraries it links:
        # GOMP_parallel resolves in the OpenMP runtime libtorch_cpu uses.
        parallel = ctypes.CDLL(torch._C.__file__).GOMP_parallel
        libm = ctypes.CDLL('libm.so.6')
        fegetenv, fesetenv = libm.fegetenv, libm.fesetenv
    except (OSError, AttributeError):
        return False
    env = ctypes.create_string_buffer(512)  # room for any fenv_t (32 bytes on x86-64 glibc)
    if fegetenv(env) != 0:
        return False
    # void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
    # num_threads 0: the team size torch's own parallel regions get (torch.set_num_threads).
    # fesetenv(const fenv_t *) takes one pointer; its int result is ignored.
    parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    parallel.restype = None
    parallel(ctypes.cast(fesetenv, ctypes.c_void_p), ctypes.cast(env, ctypes.c_void_p), 0, 0)
    return True


def set_flush_to_zero(enabled: bool) -> bool:
    """Turn FTZ and DAZ on (or off) in the calling thread and in its intra-op threads.

    Call it from the thread that runs the training step (the main thread). Returns
    :func:`flush_to_zero_holds` afterwards when ``enabled``, or that no thread flushes
    when not; False when the CPU has no such mode (``torch.set_flush_denormal`` supports
    x86 with DAZ only).
    """
    if not torch.set_flush_denormal(enabled):
        return False
    _copy_environment_to_openmp_team()
    survivors = subnormal_survivors()
    return not any(survivors) if enabled else all(survivors)


def enable_flush_to_zero() -> bool:
    """:func:`set_flush_to_zero` with ``enabled=True``: True when it holds in every thread."""
    return set_flush_to_zero(True)


class FlushDenormalStatus(NamedTuple):
    """What :func:`setup_flush_denormal` did: ``requested`` (the option), ``holds`` (the
    probe found no surviving subnormal), the line for the run's log, and whether that line
    is a warning (requested on an x86 CPU, yet a thread still computes subnormals)."""

    requested: bool
    holds: bool
    message: str
    warning: bool = False

    def log(self, logger: logging.Logger) -> None:
        """Write :attr:`message` to ``logger`` (a warning when :attr:`warning`)."""
        (logger.warning if self.warning else logger.info)(self.message)


def add_flush_denormal_arg(parser: argparse.ArgumentParser) -> None:
    """``--no-flush-denormal`` (``args.flush_denormal``, True unless given)."""
    parser.add_argument('--no-flush-denormal', dest='flush_denormal', action='store_false',
                        help='keep IEEE subnormal arithmetic on the CPU (by default '
                        'flush-to-zero and denormals-are-zero are set in every thread: '
                        'subnormal values, which are slow on x86, become 0)')


def setup_flush_denormal(enabled: bool = True) -> FlushDenormalStatus:
    """The tools' start-up step: :func:`set_flush_to_zero` as ``--no-flush-denormal`` says.

    Run it before the first computation; it also reaches an intra-op pool that exists.
    """
    threads = torch.get_num_threads()
    if not enabled:
        set_flush_to_zero(False)
        return FlushDenormalStatus(False, False, 'flush-to-zero: off (--no-flush-denormal): '
                                   'subnormal floats are computed as such (slow on x86)')
    if not torch.set_flush_denormal(True):
        return FlushDenormalStatus(True, False, 'flush-to-zero: not available on this CPU '
                                   '(torch.set_flush_denormal supports x86 only)')
    if set_flush_to_zero(True):
        return FlushDenormalStatus(True, True, f'flush-to-zero: on (FTZ/DAZ hold in every '
                                   f'intra-op thread: {threads}, the main thread included; turn '
                                   f'off with --no-flush-denormal)')
    failed = sum(1 for count in subnormal_survivors() if count)
    return FlushDenormalStatus(True, False, f'flush-to-zero: requested, but subnormals survive '
                               f'in {failed} of {threads} intra-op threads (the OpenMP runtime '
                               f'could not be reached); subnormal arithmetic stays slow',
                               warning=True)
