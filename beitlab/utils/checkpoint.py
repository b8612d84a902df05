"""Safe checkpoint loading on torch >= 2.6 (``weights_only=True`` always).

mmengine 0.10.7 calls ``torch.load`` without ``weights_only`` and stores a few of
its own types in checkpoints (the message hub's ``HistoryBuffer``, numpy scalars and
arrays in the logged history). We allow-list exactly those types so that ``--resume``
and ``load_from`` work, and replace mmengine's local-file loader with one that passes
``weights_only=True`` explicitly and turns a refused pickle into an error naming the
file. Nothing ever falls back to unsafe loading.
"""
import os.path as osp
import pickle
import re
from typing import Any, Optional

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ['MMENGINE_SAFE_GLOBALS', 'UnsafeCheckpointError', 'CorruptCheckpointError',
           'safe_torch_load', 'install_safe_checkpoint_loading']


def _numpy_safe_globals() -> list:
    """numpy types that mmengine's logged history pickles (scalars, arrays, dtypes)."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(name)) for name in (
        'float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'bool')]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


_HISTORY_BUFFER_STATISTICS = {'min', 'max', 'current', 'mean'}


def _history_buffer_method(obj: Any, name: str) -> Any:
    """A ``getattr`` restricted to what mmengine pickles with it.

    ``HistoryBuffer`` keeps its statistics (``min``, ``mean``, ...) as functions of
    the class, which pickle as ``getattr(HistoryBuffer, 'min')``. Allow-listing the real ``getattr`` would
    let a crafted file reach any attribute of any loaded object, so the global
    ``builtins.getattr`` is mapped to this function instead.
    """
    allowed = _HISTORY_BUFFER_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is not HistoryBuffer or name not in allowed:
        raise pickle.UnpicklingError(
            f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint; only the '
            f'HistoryBuffer statistics {sorted(allowed)} are')
    return getattr(obj, name)


# The exact non-tensor types an mmengine checkpoint of this stack carries.
MMENGINE_SAFE_GLOBALS = [
    HistoryBuffer, *_numpy_safe_globals(),
    (_history_buffer_method, '__builtin__.getattr'),
    (_history_buffer_method, 'builtins.getattr'),
]


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint file holds a pickled object outside the allow-list."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is empty, truncated or not a ``torch.save`` file at all."""


# What torch raises for a file that is cut short or is not a torch file: the zip reader
# ("PytorchStreamReader failed reading zip archive: failed finding central directory"),
# the legacy reader ("unexpected EOF, expected 8 more bytes. The file might be corrupted",
# "Invalid magic number; corrupt file?"), an empty file (EOFError), a text file (KeyError
# of the pickle opcode) and a zip cut inside a record (OSError "Invalid argument").
_CORRUPT_MESSAGES = ('PytorchStreamReader', 'central directory', 'unexpected EOF',
                     'might be corrupted', 'magic number', 'invalid load key', 'truncated',
                     'corrupt')


def _is_corrupt_file_error(err: BaseException) -> bool:
    if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return False
    if isinstance(err, (EOFError, KeyError, IndexError, OSError)):
        return True
    text = str(err)
    return isinstance(err, (RuntimeError, ValueError)) and any(
        m.lower() in text.lower() for m in _CORRUPT_MESSAGES)


def _corrupt_checkpoint_error(filename: str, err: BaseException) -> CorruptCheckpointError:
    size = osp.getsize(filename)
    reason = ' '.join(str(err).split()) or type(err).__name__
    reason = reason.split('. This is an internal miniz error')[0]
    if len(reason) > 160:
        reason = reason[:157] + '...'
    detail = 'the file is empty' if size == 0 else f'{type(err).__name__}: {reason}'
    return CorruptCheckpointError(
        f'checkpoint file {filename!r} ({size} bytes) is truncated or not a torch checkpoint '
        f'({detail}); save or copy it again, or check that the path names a checkpoint')


def safe_torch_load(filename: str, map_location: Any = 'cpu') -> Any:
    """``torch.load(filename, weights_only=True)`` with a clear error on refusal.

    Raises:
        FileNotFoundError: the file does not exist.
        CorruptCheckpointError: the file is empty, truncated or not a torch file; the
            message gives its name and size.
        UnsafeCheckpointError: the file carries a pickled object that is not a tensor,
            a plain Python container or one of :data:`MMENGINE_SAFE_GLOBALS`.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    if osp.getsize(filename) == 0:
        raise _corrupt_checkpoint_error(filename, EOFError())
    try:
        # The allow-list applies to this call whether or not
        # install_safe_checkpoint_loading() ran before.
        with torch.serialization.safe_globals(MMENGINE_SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if _is_truncated_pickle(err):
            raise _corrupt_checkpoint_error(filename, err) from err
        raise UnsafeCheckpointError(
            f'refused to load checkpoint {filename!r} (UnsafeCheckpointError): it holds a '
            f'pickled object that weights_only=True does not allow ({_refusal_reason(err)}); '
            f'only tensors, plain Python types and mmengine\'s logging types are accepted. '
            f'If you trust the file, load it once in a trusted environment and re-save only '
            f'its tensors, e.g. torch.save({{\'state_dict\': ckpt[\'state_dict\']}}, '
            f'\'clean.pth\')') from err
    except (RuntimeError, EOFError, OSError, KeyError, IndexError, ValueError) as err:
        if not _is_corrupt_file_error(err):
            raise
        raise _corrupt_checkpoint_error(filename, err) from err


def _is_truncated_pickle(err: pickle.UnpicklingError) -> bool:
    """The weights-only unpickler ran out of data (not a refused object)."""
    text = str(err)
    return 'Unsupported global' not in text and 'not allowed' not in text and any(
        m in text for m in ('truncated', 'Ran out of input', 'unexpected EOF', 'EOF'))


_ANSI = re.compile(r'\x1b\[[0-9;]*m')


def _refusal_reason(err: BaseException) -> str:
    """The one sentence of torch's refusal that names the object (``Unsupported global:
    GLOBAL module.Name``), without its advice to load with ``weights_only=False``."""
    text = ' '.join(_ANSI.sub('', str(err)).split())
    match = re.search(r'WeightsUnpickler error: (.+?)(?: was not an allowed global| Please|\. |$)',
                      text)
    reason = match.group(1) if match else text
    return reason if len(reason) <= 200 else reason[:197] + '...'


def _load_from_local(filename: str, map_location: Optional[Any]) -> Any:
    return safe_torch_load(filename, map_location=map_location)


def install_safe_checkpoint_loading() -> None:
    """Allow-list mmengine's checkpoint types and route local loads through
    :func:`safe_torch_load` (used by ``load_from``, ``--resume`` and ``init_cfg``)."""
    torch.serialization.add_safe_globals(MMENGINE_SAFE_GLOBALS)
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)
