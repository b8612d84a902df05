"""Crash-safe output files: a path holds either its old content or the complete new one.

Every writer here follows the same steps (POSIX ``rename(2)`` is atomic within a file
system):

1. write into a temporary file ``.<name>.<random>.tmp`` in the destination's own folder
   (same file system, so the rename below cannot turn into a copy);
2. flush and ``os.fsync`` it, give it the permissions of a normally created file
   (``0o666`` minus the umask; ``mkstemp`` creates ``0o600``) and, optionally, check it
   (``verify``, e.g. :func:`verify_torch_file`);
3. ``os.replace`` it over the destination, then ``fsync`` the folder so that the rename
   itself survives a power loss.

On any error (including ``KeyboardInterrupt``) the temporary file is removed and the
destination is untouched. A process killed with ``SIGKILL`` cannot clean up: it may leave a
``.<name>.<random>.tmp`` file next to the destination, never a torn destination;
:func:`find_temp_files` lists such leftovers.

:func:`check_output_path` is the refusal every tool runs before it reads anything heavy:
no silent overwrite (``--force`` allows it) and never an output that is one of its inputs.
"""
import os
import os.path as osp
import re
import tempfile
import threading
import zipfile
from contextlib import contextmanager
from typing import IO, Any, Callable, Iterable, Iterator, List, Optional, Union

__all__ = ['TEMP_SUFFIX', 'atomic_open', 'atomic_write_bytes', 'atomic_write_text', 'atomic_savefig',
           'atomic_torch_save', 'verify_torch_file', 'check_output_path', 'find_temp_files',
           'VERIFY_LEVELS']

PathLike = Union[str, 'os.PathLike[str]']
TEMP_SUFFIX = '.tmp'
# How thoroughly verify_torch_file reads a checkpoint back: 'zip' parses the zip central
# directory and CRC-checks the pickle record (cheap: reads the pickle and the index only);
# 'crc' also CRC-checks every tensor record (reads the whole file); 'load' unpickles it with
# beitlab.checkpoint.safe_torch_load (reads and deserializes everything).
VERIFY_LEVELS = ('zip', 'crc', 'load')

_umask_lock = threading.Lock()


def _current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _fsync_folder(folder: str) -> None:
    """Make a rename inside ``folder`` durable; a no-op where folders cannot be opened."""
    flags = os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0)
    try:
        fd = os.open(folder, flags)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders; the rename is done anyway
        pass
    finally:
        os.close(fd)


def _temp_prefix(name: str) -> str:
    return f'.{name}.'


@contextmanager
def atomic_open(path: PathLike, mode: str = 'wb', *, encoding: Optional[str] = None,
                verify: Optional[Callable[[str], Any]] = None) -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the ``with`` block ends without error.

    ``mode`` is ``'wb'`` or ``'w'``. ``verify(temp_path)``, when given, runs after the data is
    on disk and before the rename; an exception from it (or from the block) removes the
    temporary file and leaves ``path`` as it was. Missing parent folders are created.
    """
    if mode not in ('wb', 'w'):
        raise ValueError(f'atomic_open mode {mode!r}: expected "wb" or "w"')
    path = osp.abspath(osp.expanduser(os.fspath(path)))
    folder, name = osp.split(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(name), suffix=TEMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, mode, encoding=encoding if 'b' not in mode else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)


def atomic_write_bytes(path: PathLike, data: bytes,
                       verify: Optional[Callable[[str], Any]] = None) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_open(path, 'wb', verify=verify) as f:
        f.write(data)


def atomic_write_text(path: PathLike, text: str, encoding: str = 'utf-8') -> None:
    """Write ``text`` to ``path`` atomically (see the module docstring)."""
    with atomic_open(path, 'w', encoding=encoding) as f:
        f.write(text)


def atomic_savefig(fig: Any, path: PathLike, **savefig_kwargs: Any) -> None:
    """Save a matplotlib figure to ``path`` atomically, in the format its extension names."""
    fmt = osp.splitext(os.fspath(path))[1].lstrip('.').lower() or 'png'
    with atomic_open(path, 'wb') as f:
        fig.savefig(f, format=fmt, **savefig_kwargs)


def atomic_torch_save(obj: Any, path: PathLike, verify: Optional[str] = 'zip') -> None:
    """``torch.save(obj, path)`` atomically; the written file is read back with
    :func:`verify_torch_file` at ``verify`` level (``None`` skips the check) before it
    replaces ``path``."""
    import torch
    check = None if verify is None else (lambda tmp: verify_torch_file(tmp, verify))
    with atomic_open(path, 'wb', verify=check) as f:
        torch.save(obj, f)


def verify_torch_file(path: PathLike, level: str = 'zip') -> None:
    """Raise ``ValueError`` naming ``path`` unless it is a complete ``torch.save`` file.

    Args:
        level: ``'zip'`` (the zip index is whole, every record lies inside the file and the
            pickle record's CRC matches; cost independent of the tensor bytes), ``'crc'``
            (every record's CRC: reads the whole file) or ``'load'`` (unpickle it with
            ``weights_only=True`` through :func:`beitlab.checkpoint.io.safe_torch_load`).
    """
    path = os.fspath(path)
    if level not in VERIFY_LEVELS:
        raise ValueError(f'verify level {level!r}: expected one of {VERIFY_LEVELS}')
    if level == 'load':
        from beitlab.checkpoint.io import safe_torch_load
        try:
            safe_torch_load(path)
        except Exception as err:  # noqa: BLE001 - any failure to load means incomplete
            raise ValueError(f'{path!r} is not a complete torch checkpoint: {err}') from err
        return
    problem = _zip_problem(path, level)
    if problem is not None:
        raise ValueError(f'{path!r} is not a complete torch checkpoint: {problem}')


def _zip_problem(path: str, level: str) -> Optional[str]:
    """What is wrong with the zip-format torch file ``path`` (``None`` when nothing is)."""
    try:
        size = osp.getsize(path)
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            pickles = [i for i in infos if i.filename.endswith('/data.pkl')]
            if len(pickles) != 1:
                return (f'expected one <archive>/data.pkl record, found '
                        f'{[i.filename for i in infos][:5]}')
            for info in infos:
                end = info.header_offset + info.compress_size
                if end > size:
                    return f'record {info.filename!r} ends at byte {end} of {size}'
            zf.read(pickles[0])  # checks the pickle record's CRC
            if level == 'crc':
                bad = zf.testzip()
                if bad is not None:
                    return f'record {bad!r} fails its CRC check'
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as err:
        return f'{type(err).__name__}: {err}'
    return None


def _same_file(a: str, b: str) -> Optional[str]:
    """How ``a`` and ``b`` are the same file (``None`` when they are not)."""
    if osp.realpath(a) == osp.realpath(b):
        return 'same path' if osp.abspath(a) == osp.abspath(b) else \
            f'both resolve to {osp.realpath(a)!r}'
    try:
        if osp.exists(a) and osp.exists(b) and osp.samefile(a, b):
            return 'hard links to one file'
    except OSError:
        pass
    return None


def check_output_path(dst: PathLike, inputs: Iterable[Optional[PathLike]] = (),
                      force: bool = False, folder: bool = False) -> str:
    """Refuse an output path before anything heavy is read or written; returns ``dst``.

    Args:
        dst: the file (or, with ``folder=True``, the folder) the tool will write.
        inputs: the paths the tool reads (``None`` entries are skipped).
        force: allow replacing an existing output file, or writing into a non-empty folder.
        folder: ``dst`` is an output folder; an existing empty folder is fine.

    Raises:
        ValueError: ``dst`` is one of ``inputs`` (same path, a symbolic link resolving to it
            or a hard link to it), whatever ``force`` says.
        FileExistsError: ``dst`` exists (is a non-empty folder, with ``folder=True``) and
            ``force`` is false.
        IsADirectoryError / NotADirectoryError: ``dst`` is a folder where a file is
            written, or a file where a folder is written.
    """
    dst = os.fspath(dst)
    for src in inputs:
        if src is None:
            continue
        src = os.fspath(src)
        how = _same_file(dst, src)
        if how is not None:
            raise ValueError(f'output {dst!r} is the input {src!r} ({how}): writing it would '
                             f'destroy the input while it is read; choose another output path '
                             f'(--force does not allow this)')
    if folder:
        if osp.exists(dst) and not osp.isdir(dst):
            raise NotADirectoryError(f'output folder {dst!r} is an existing file; expected a '
                                     f'folder (or a path that does not exist)')
        if osp.isdir(dst) and os.listdir(dst) and not force:
            raise FileExistsError(f'output folder {dst!r} exists and is not empty; pass --force '
                                  f'to write into it (files of the same name are replaced, '
                                  f'others are kept)')
        return dst
    if osp.isdir(dst):
        raise IsADirectoryError(f'output {dst!r} is a folder; expected the path of a file')
    if osp.lexists(dst) and not force:
        raise FileExistsError(f'output {dst!r} exists; pass --force to overwrite it')
    return dst


_TEMP_NAME = re.compile(r'^\.(?P<name>.+)\.[A-Za-z0-9_]+' + re.escape(TEMP_SUFFIX) + '$')


def find_temp_files(folder: PathLike, name: Optional[Callable[[str], bool]] = None) -> List[str]:
    """Temporary files an interrupted atomic write left in ``folder`` (sorted paths).

    Args:
        name: keep only the leftovers whose destination name passes this test.
    """
    folder = os.fspath(folder)
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        match = _TEMP_NAME.match(entry)
        if match and (name is None or name(match.group('name'))) and \
                osp.isfile(osp.join(folder, entry)):
            found.append(osp.join(folder, entry))
    return sorted(found)
