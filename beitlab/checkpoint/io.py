"""Reading and writing checkpoint files, safely: ``torch.load(weights_only=True)`` for
``.pth`` files and the ``safetensors`` format for ``.safetensors`` files, chosen by suffix.
Nothing ever falls back to unsafe loading.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only`` and stores a few of
its own types in checkpoints (the message hub's ``HistoryBuffer``, numpy scalars and
arrays in the logged history). We allow-list exactly those types so that ``--resume``
and ``load_from`` work, and replace mmengine's local-file loader with one that passes
``weights_only=True`` explicitly (or reads a ``.safetensors`` file) and turns a refused
pickle into an error naming the file.

A ``.safetensors`` file holds a flat ``{name: tensor}`` dict and string metadata (what
Hugging Face and timm publish). A beitlab checkpoint written as ``.safetensors`` keeps its
``meta`` as JSON under the metadata key :data:`META_KEY`; :func:`load_checkpoint_file` then
returns ``{'state_dict': ..., 'meta': ...}`` as for a ``.pth`` file.
"""
import json
import os
import os.path as osp
import pickle
import re
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ['MMENGINE_SAFE_GLOBALS', 'UnsafeCheckpointError', 'CorruptCheckpointError',
           'SAFETENSORS_SUFFIX', 'META_KEY', 'safe_torch_load', 'is_safetensors', 'load_safetensors',
           'load_checkpoint_file', 'save_checkpoint_file', 'install_safe_checkpoint_loading']

SAFETENSORS_SUFFIX = '.safetensors'
# safetensors metadata key holding a beitlab checkpoint's ``meta`` as JSON
META_KEY = 'beitlab_meta'


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


def _corrupt_checkpoint_error(filename: str, err: BaseException,
                              what: str = 'torch checkpoint') -> CorruptCheckpointError:
    size = osp.getsize(filename)
    reason = ' '.join(str(err).split()) or type(err).__name__
    reason = reason.split('. This is an internal miniz error')[0]
    if len(reason) > 160:
        reason = reason[:157] + '...'
    detail = 'the file is empty' if size == 0 else f'{type(err).__name__}: {reason}'
    return CorruptCheckpointError(
        f'checkpoint file {filename!r} ({size} bytes) is truncated or not a {what} '
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


def is_safetensors(filename: Any) -> bool:
    """The file is read (and written) in the safetensors format: its name ends in
    ``.safetensors``."""
    return os.fspath(filename).lower().endswith(SAFETENSORS_SUFFIX)


def _safetensors_module(filename: str, action: str) -> Any:
    try:
        import safetensors.torch
    except ImportError as err:
        raise ImportError(f'cannot {action} {filename!r}: the safetensors package is not '
                          f'installed (pip install safetensors)') from err
    return safetensors


def load_safetensors(filename: str, device: str = 'cpu') -> Dict[str, Any]:
    """A ``.safetensors`` file: its flat ``{name: tensor}`` dict, or ``{'state_dict': ...,
    'meta': ...}`` when its metadata holds a beitlab ``meta`` (:data:`META_KEY`).

    Raises:
        FileNotFoundError: the file does not exist.
        ImportError: the ``safetensors`` package is missing (the message names the file).
        CorruptCheckpointError: the file is empty, truncated or not a safetensors file.
    """
    filename = osp.expanduser(os.fspath(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    safetensors = _safetensors_module(filename, 'read')
    try:
        with safetensors.safe_open(filename, framework='pt', device=device) as f:
            metadata = f.metadata() or {}
            state = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as err:  # noqa: BLE001 - SafetensorError and OSError alike: a bad file
        if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise _corrupt_checkpoint_error(filename, err, 'safetensors file') from err
    if META_KEY not in metadata:
        return state
    try:
        meta = json.loads(metadata[META_KEY])
    except ValueError as err:
        raise _corrupt_checkpoint_error(filename, err, 'safetensors file') from err
    return {'state_dict': state, 'meta': meta}


def load_checkpoint_file(filename: Any, map_location: Any = 'cpu') -> Dict[str, Any]:
    """The dict a checkpoint file holds: :func:`load_safetensors` for a ``.safetensors``
    name, :func:`safe_torch_load` otherwise.

    Raises:
        TypeError: the file holds something other than a dict (the message names the file).
        and the errors of :func:`safe_torch_load` / :func:`load_safetensors`.
    """
    filename = os.fspath(filename)
    if is_safetensors(filename):
        device = map_location if isinstance(map_location, str) else 'cpu'
        return load_safetensors(filename, device=device)
    checkpoint = safe_torch_load(filename, map_location=map_location)
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'checkpoint file {filename!r} holds a {type(checkpoint).__name__}, '
                        "expected a dict (a state dict, or one under 'state_dict' / 'model')")
    return checkpoint


def save_checkpoint_file(checkpoint: Mapping[str, Any], filename: Any) -> None:
    """Write ``checkpoint`` atomically (:mod:`beitlab.utils.atomic_io`): ``torch.save`` for
    a ``.pth`` name; for a ``.safetensors`` name its tensors (a flat state dict, or the one
    under ``state_dict`` / ``model``) with ``meta`` as JSON metadata. Tensors that share
    memory are stored as copies (the format refuses shared storage)."""
    from beitlab.utils.atomic_io import atomic_torch_save, atomic_write_bytes
    filename = os.fspath(filename)
    if not is_safetensors(filename):
        atomic_torch_save(dict(checkpoint), filename)
        return
    safetensors = _safetensors_module(filename, 'write')
    state, meta = checkpoint, None
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), Mapping):
            state, meta = checkpoint[key], checkpoint.get('meta')
            break
    tensors, seen = {}, set()
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f'{filename!r}: {name!r} is a {type(value).__name__}; a '
                            'safetensors file holds tensors only')
        value = value.detach().contiguous()
        if value.numel() and value.untyped_storage().data_ptr() in seen:
            value = value.clone()
        seen.add(value.untyped_storage().data_ptr())
        tensors[name] = value
    metadata = {'format': 'pt'}
    if meta is not None:
        metadata[META_KEY] = json.dumps(meta, default=str)  # meta is informational
    atomic_write_bytes(filename, safetensors.torch.save(tensors, metadata=metadata))


def _load_from_local(filename: str, map_location: Optional[Any]) -> Any:
    if is_safetensors(filename):
        return load_checkpoint_file(filename, map_location)
    return safe_torch_load(filename, map_location=map_location)


def install_safe_checkpoint_loading() -> None:
    """Allow-list mmengine's checkpoint types and route local loads through
    :func:`safe_torch_load`, or :func:`load_safetensors` for a ``.safetensors`` file (used
    by ``load_from``, ``--resume`` and ``init_cfg``)."""
    torch.serialization.add_safe_globals(MMENGINE_SAFE_GLOBALS)
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)
