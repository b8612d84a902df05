"""A checkpoint hook whose files survive being killed at any moment (``SIGKILL``, pre-emption).

mmengine's ``CheckpointHook`` with ``max_keep_ckpts=1`` removes the previous checkpoint
before it writes the new one, and writes the new one in place: killed in between, a run
has no checkpoint left, or a truncated one. ``AtomicCheckpointHook`` keeps mmengine's
options and semantics and changes the order and the way files are written (see
``docs/reliability.md``).
"""
import os
import os.path as osp
import re
from typing import List, Optional, Union

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook

from beitlab.registry import HOOKS
from beitlab.utils.atomic_io import (
    VERIFY_LEVELS,
    atomic_write_bytes,
    atomic_write_text,
    find_temp_files,
    verify_torch_file,
)

__all__ = ['AtomicCheckpointHook', 'AtomicLocalBackend', 'ATOMIC_BACKEND']

ATOMIC_BACKEND = 'beitlab_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` / ``put_text`` replace a file atomically
    (:mod:`beitlab.utils.atomic_io`) and, for ``put``, check the written checkpoint with
    :func:`~beitlab.utils.atomic_io.verify_torch_file` at ``verify`` level before the rename
    (``None``: no check)."""

    def __init__(self, verify: Optional[str] = 'zip') -> None:
        super().__init__()
        if verify is not None and verify not in VERIFY_LEVELS:
            raise ValueError(f'verify={verify!r}: expected None or one of {VERIFY_LEVELS}')
        self.verify = verify

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        level = self.verify
        check = None if level is None else (lambda tmp: verify_torch_file(tmp, level))
        atomic_write_bytes(filepath, obj, verify=check)

    def put_text(self, obj: str, filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
        atomic_write_text(filepath, obj, encoding=encoding)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


def _step_pattern(filename_tmpl: str) -> Optional['re.Pattern']:
    """``'iter_{}.pth'`` -> a regex matching ``iter_<digits>.pth`` with the digits as group 1."""
    parts = filename_tmpl.split('{}')
    if len(parts) != 2:
        return None
    return re.compile('^' + re.escape(parts[0]) + r'(\d+)' + re.escape(parts[1]) + '$')


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints are written atomically and removed only once a
    newer one is safely on disk (all of mmengine's arguments keep their meaning).

    How: when checkpoints go to a local folder and neither ``backend_args`` nor
    ``file_client_args`` is given, the hook passes ``backend_args=dict(backend=
    'beitlab_atomic_local')`` to the Runner's ``save_checkpoint``. The Runner still builds the
    checkpoint (meta, message hub, optimizer, schedulers, ``before_save_checkpoint`` hooks)
    and hands its bytes to the file backend's ``put``; :class:`AtomicLocalBackend` writes
    them to a temporary file in the same folder, fsyncs it, checks it and renames it over
    the destination. Doing it in the backend keeps the Runner's checkpoint format untouched
    (also for Runner subclasses) and covers every file the hook writes, best checkpoints
    included.

    Order of one save (rank 0 does the file operations, as in mmengine):

    1. ``keep_ckpt_ids`` in the message hub is updated first (so the new checkpoint records
       which files are kept, as mmengine does), but nothing is removed yet;
    2. the new checkpoint is written atomically and read back (``verify``);
    3. ``last_checkpoint`` is replaced atomically to point at it;
    4. only then the checkpoints beyond ``max_keep_ckpts`` are removed (a previous best
       checkpoint likewise only after the new best one is written).

    Killed anywhere, the folder holds the previous checkpoint, the new one or both, each
    complete, and ``last_checkpoint`` names a complete one. When training starts, leftovers
    of such a kill are removed: temporary files of interrupted writes and, after resuming
    from a checkpoint of this folder, the checkpoints older than the ones it keeps (a kill
    between steps 3 and 4).

    Args:
        verify: how the written checkpoint is read back before it replaces anything:
            ``'zip'`` (default: zip index and pickle record, cheap for any size), ``'crc'``
            (every byte's CRC), ``'load'`` (full ``weights_only`` load) or ``None``.
        **kwargs: mmengine ``CheckpointHook`` arguments (``interval``, ``by_epoch``,
            ``max_keep_ckpts``, ``save_best``, ``out_dir``, ``filename_tmpl``, ...).
            With remote storage (``out_dir`` with a ``://`` prefix, ``backend_args`` or
            ``file_client_args``) the hook keeps mmengine's writes and only the ordering
            of step 4 applies.
    """

    def __init__(self, *args, verify: Optional[str] = 'zip', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if verify is not None and verify not in VERIFY_LEVELS:
            raise ValueError(f'AtomicCheckpointHook verify={verify!r}: expected None or one of '
                             f'{VERIFY_LEVELS}')
        self.verify = verify

    @property
    def atomic(self) -> bool:
        """Whether the checkpoint files are written through :class:`AtomicLocalBackend`."""
        return isinstance(self.backend_args, dict) and \
            self.backend_args.get('backend') == ATOMIC_BACKEND

    def before_train(self, runner) -> None:
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        if self.backend_args is None and self.file_client_args is None and \
                '://' not in str(out_dir):
            self.backend_args = dict(backend=ATOMIC_BACKEND, verify=self.verify)
        super().before_train(runner)
        if self.atomic and is_main_process():
            self._remove_leftovers(runner)

    # ------------------------------------------------------------------ saving
    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        outdated: List[int] = []
        if self.max_keep_ckpts > 0:
            # _save_checkpoint and _save_best_checkpoint may both save the same step
            if not (len(self.keep_ckpt_ids) > 0 and self.keep_ckpt_ids[-1] == step):
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    outdated.append(self.keep_ckpt_ids.popleft())
                self.keep_ckpt_ids.append(step)
                runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)

        if not is_main_process():
            return
        save_file = osp.join(runner.work_dir, 'last_checkpoint')
        atomic_write_bytes(save_file, str(self.last_ckpt).encode('utf-8'))
        for old in outdated:
            self._remove(self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old)))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        # mmengine removes the previous best file before it writes the new one; hold those
        # removals back until the new best (and the re-saved latest checkpoint) is written.
        deferred: List[str] = []
        backend = self.file_backend
        backend.remove = deferred.append  # an instance attribute shadows the method
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            del backend.remove
        for path in deferred:
            self._remove(path)

    def _remove(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed are folders
            self.file_backend.rmtree(path)

    # ------------------------------------------------------------------ leftovers
    def _remove_leftovers(self, runner) -> None:
        """Remove what a killed run of this folder left behind (see the class docstring)."""
        pattern = _step_pattern(self.filename_tmpl)

        def ours(name: str) -> bool:
            return name.startswith('best_') or bool(pattern is not None and pattern.match(name))

        leftovers = find_temp_files(self.out_dir, ours) + \
            find_temp_files(runner.work_dir, lambda name: name == 'last_checkpoint')
        leftovers += self._outdated_after_resume(runner, pattern)
        for path in sorted(set(leftovers)):
            try:
                os.remove(path)
            except FileNotFoundError:
                continue
            runner.logger.info(f'removed {path}, left by an interrupted run')

    def _outdated_after_resume(self, runner, pattern: Optional['re.Pattern']) -> List[str]:
        """Checkpoints of ``out_dir`` older than every kept one, when the run resumed from a
        checkpoint of ``out_dir``: the previous process was stopped before removing them."""
        if pattern is None or self.max_keep_ckpts <= 0 or not getattr(runner, '_resume', False):
            return []
        keep = list(self.keep_ckpt_ids)
        resumed = getattr(runner, '_load_from', None) or \
            runner.message_hub.get_info('last_ckpt')
        if not keep or not resumed or \
                osp.realpath(osp.dirname(str(resumed))) != osp.realpath(self.out_dir):
            return []
        oldest_kept = min(keep)
        found = []
        for name in os.listdir(self.out_dir):
            match = pattern.match(name)
            if match and int(match.group(1)) < oldest_kept and \
                    osp.isfile(osp.join(self.out_dir, name)):
                found.append(osp.join(self.out_dir, name))
        return found
