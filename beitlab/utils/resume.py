"""Which checkpoint ``tools/train.py --resume`` (no value) and ``--auto-resume`` continue from.

mmengine's own choice is whatever the work dir's ``last_checkpoint`` file names, unchecked:
an empty file, a pointer to a deleted file or to a file truncated by a kill makes the
resume fail, and a work dir without checkpoints silently trains from iteration 0.
:func:`find_resume_checkpoint` checks the file first and falls back to the newest intact
``iter_*.pth`` / ``epoch_*.pth`` (``docs/reliability.md``).
"""
import logging
import os
import os.path as osp
import re
from typing import List, Optional, Tuple

from .atomic_io import verify_torch_file

__all__ = ['find_resume_checkpoint', 'checkpoint_problem', 'list_step_checkpoints']

_STEP_CKPT = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from (``None`` when it is an intact checkpoint).

    A zip-format file (every ``torch.save`` since torch 1.6) gets the cheap zip check of
    :func:`~beitlab.utils.atomic_io.verify_torch_file`; any other file is loaded with
    ``weights_only=True``.
    """
    if not osp.exists(path):
        return 'it does not exist'
    if not osp.isfile(path):
        return 'it is not a file'
    try:
        with open(path, 'rb') as f:
            is_zip = f.read(4) == b'PK\x03\x04'
    except OSError as err:
        return f'it cannot be read ({err})'
    try:
        verify_torch_file(path, 'zip' if is_zip else 'load')
    except ValueError as err:
        return str(err)
    return None


def list_step_checkpoints(folder: str) -> List[Tuple[str, int, str]]:
    """``(kind, number, path)`` of every ``iter_N.pth`` / ``epoch_N.pth`` in ``folder``, newest
    first: by number within a kind, and the kind whose newest file was written last first."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = {}
    for name in names:
        match = _STEP_CKPT.match(name)
        if match:
            found.setdefault(match.group(1), []).append(
                (match.group(1), int(match.group(2)), osp.join(folder, name)))
    groups = [sorted(group, key=lambda c: c[1], reverse=True) for group in found.values()]

    def newest_mtime(group):
        try:
            return osp.getmtime(group[0][2])
        except OSError:
            return 0.0

    groups.sort(key=newest_mtime, reverse=True)
    return [c for group in groups for c in group]


def _warn(logger: Optional[logging.Logger], message: str) -> None:
    if logger is not None:
        logger.warning(message)
    else:
        from mmengine.logging import print_log
        print_log(message, logger='current', level=logging.WARNING)


def _read_pointer(pointer: str) -> Tuple[Optional[str], Optional[str]]:
    """``(target, problem)`` of a ``last_checkpoint`` file."""
    if not osp.exists(pointer):
        return None, None
    try:
        with open(pointer, encoding='utf-8') as f:
            target = f.read().strip()
    except (OSError, UnicodeDecodeError) as err:
        return None, f'{pointer!r} cannot be read ({err})'
    if not target:
        return None, f'{pointer!r} is empty'
    return target, None


def find_resume_checkpoint(work_dir: str,
                           logger: Optional[logging.Logger] = None) -> Optional[str]:
    """The newest intact checkpoint of ``work_dir``, or ``None`` when it has none.

    1. ``work_dir/last_checkpoint`` (written by the checkpoint hooks) names a checkpoint:
       if that file is intact (:func:`checkpoint_problem`) it is the answer. A relative name
       that does not exist is also looked up by its file name in ``work_dir`` (a moved work
       dir).
    2. Otherwise (the pointer is missing, empty, or names a missing, truncated or unreadable
       file) a warning names the problem and the newest intact ``iter_N.pth`` /
       ``epoch_N.pth`` by ``N`` is taken, from ``work_dir`` and from the folder the pointer
       named (a hook's ``out_dir``); every newer file that is skipped is named in a warning.

    Args:
        logger: where warnings go (default: mmengine's current logger).
    """
    work_dir = osp.expanduser(str(work_dir))
    pointer = osp.join(work_dir, 'last_checkpoint')
    target, problem = _read_pointer(pointer)
    folders = [work_dir]
    if target is not None:
        candidates = [target]
        if not osp.isabs(target) and not osp.exists(target):
            candidates.append(osp.join(work_dir, osp.basename(target)))
        for candidate in candidates:
            reason = checkpoint_problem(candidate)
            if reason is None:
                return candidate
        problem = f'{pointer!r} names {target!r}, which cannot be resumed from: {reason}'
        target_dir = osp.dirname(target)
        if target_dir and osp.realpath(target_dir) != osp.realpath(work_dir):
            folders.append(target_dir)

    seen, ordered = set(), []
    for folder in folders:
        for kind, number, path in list_step_checkpoints(folder):
            if osp.realpath(path) not in seen:
                seen.add(osp.realpath(path))
                ordered.append(path)
    if problem is None and ordered:
        problem = f'{work_dir!r} has no last_checkpoint file'
    if problem is not None:
        fallback = 'taking the newest intact iter_*.pth / epoch_*.pth' if ordered else \
            'and no iter_*.pth / epoch_*.pth to fall back to'
        _warn(logger, f'{problem}; {fallback}')
    for path in ordered:
        reason = checkpoint_problem(path)
        if reason is None:
            if problem is not None:
                _warn(logger, f'resuming from {path!r}')
            return path
        _warn(logger, f'skipping {path!r}: {reason}')
    return None
