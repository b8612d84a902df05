"""AtomicCheckpointHook: a failed save leaves the previous checkpoint and ``last_checkpoint``
intact, removal happens only after the new file is complete, and mmengine's bookkeeping
(``keep_ckpt_ids``, best checkpoints) is unchanged."""
import builtins
import errno
import os
import os.path as osp
import tempfile
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.fileio.backends import local_backend
from mmengine.runner import Runner

from beitlab.checkpoint import safe_torch_load
from beitlab.engine.hooks.atomic_checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend
from beitlab.utils import register_all_modules
from beitlab.utils.atomic_io import find_temp_files


def make_runner(work_dir, max_iters: int, resume: bool = False, load_from=None,
                **hook) -> Runner:
    register_all_modules()
    import tests.toy_components  # noqa: F401 - registers ToyRegressor and its dataset
    checkpoint = dict(type='AtomicCheckpointHook', interval=1, by_epoch=False, max_keep_ckpts=1)
    checkpoint.update(hook)
    cfg = Config(dict(
        default_scope='beitlab',
        model=dict(type='ToyRegressor'),
        work_dir=str(work_dir),
        experiment_name=f'atomic_ckpt_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              dataset=dict(type='ToyRegressionDataset'),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        default_hooks=dict(checkpoint=checkpoint, logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(by_epoch=False),
        log_level='WARNING',
        resume=resume,
        load_from=load_from,
    ))
    return Runner.from_cfg(cfg)


class _PartialWriter:
    """A file that writes half of what it is given, then fails like a full disk."""

    def __init__(self, f) -> None:
        self._f = f

    def write(self, data) -> int:
        self._f.write(data[:len(data) // 2])
        self._f.flush()
        raise OSError(errno.ENOSPC, 'No space left on device (injected)')

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def fail_writes_of(monkeypatch, fragment: str) -> None:
    """Every file opened for writing whose name contains ``fragment`` fails half-way: files
    written in place by mmengine's local backend and the temporary files of atomic writes."""
    names = {}
    real_mkstemp, real_fdopen, real_open = tempfile.mkstemp, os.fdopen, builtins.open

    def mkstemp(*args, **kwargs):
        fd, path = real_mkstemp(*args, **kwargs)
        names[fd] = path
        return fd, path

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        return _PartialWriter(f) if fragment in names.get(fd, '') else f

    def open_(file, mode='r', *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return _PartialWriter(f) if 'w' in mode and fragment in str(file) else f

    monkeypatch.setattr(tempfile, 'mkstemp', mkstemp)
    monkeypatch.setattr(os, 'fdopen', fdopen)
    monkeypatch.setattr(local_backend, 'open', open_, raising=False)


def test_failed_save_keeps_previous_checkpoint_and_pointer(tmp_path, monkeypatch) -> None:
    work = tmp_path / 'work'
    make_runner(work, max_iters=2).train()
    previous = work / 'iter_2.pth'
    assert (work / 'last_checkpoint').read_text() == str(previous)
    before = previous.read_bytes()

    # the save of iteration 3 fails after writing half of the file
    fail_writes_of(monkeypatch, 'iter_3.pth')
    runner = make_runner(work, max_iters=3, resume=True, load_from=str(previous))
    with pytest.raises(OSError, match='injected'):
        runner.train()
    monkeypatch.undo()

    assert previous.read_bytes() == before  # mmengine would have removed it before the save
    assert safe_torch_load(str(previous))['meta']['iter'] == 2
    assert (work / 'last_checkpoint').read_text() == str(previous)
    assert not (work / 'iter_3.pth').exists()
    assert find_temp_files(work) == []
    assert sorted(p for p in os.listdir(work) if p.endswith('.pth')) == ['iter_2.pth']


def test_keep_ids_removal_order_and_resume(tmp_path) -> None:
    work = tmp_path / 'work'
    make_runner(work, max_iters=4, max_keep_ckpts=2).train()
    assert sorted(p for p in os.listdir(work) if p.endswith('.pth')) == ['iter_3.pth', 'iter_4.pth']
    last = safe_torch_load(str(work / 'iter_4.pth'))
    assert last['message_hub']['runtime_info']['keep_ckpt_ids'] == [3, 4]
    assert oct(os.stat(work / 'iter_4.pth').st_mode & 0o777) == oct(0o666 & ~_umask())

    # what a kill between the save of iter_4 and the removal of iter_2 leaves behind, plus a
    # temporary file of an interrupted write: both are removed when the run resumes
    torch.save({'meta': {'iter': 2}}, work / 'iter_2.pth')
    (work / '.iter_5.pth.k1ll3d.tmp').write_bytes(b'half')
    (work / '.last_checkpoint.k1ll3d.tmp').write_bytes(b'')
    (work / 'notes_iter_1.pth').write_bytes(b'someone else\'s file')
    make_runner(work, max_iters=5, max_keep_ckpts=2, resume=True,
                load_from=str(work / 'iter_4.pth')).train()
    names = sorted(os.listdir(work))
    assert [n for n in names if n.endswith('.pth')] == ['iter_4.pth', 'iter_5.pth',
                                                        'notes_iter_1.pth']
    assert not [n for n in names if n.endswith('.tmp')]
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_5.pth')
    ckpt = safe_torch_load(str(work / 'iter_5.pth'))
    assert ckpt['message_hub']['runtime_info']['keep_ckpt_ids'] == [4, 5]
    assert {float(s['step']) for s in ckpt['optimizer']['state'].values()} == {5.0}


def test_resume_from_another_folder_removes_nothing_of_this_one(tmp_path) -> None:
    make_runner(tmp_path / 'a', max_iters=3).train()
    other = tmp_path / 'b'
    other.mkdir()
    torch.save({'meta': {'iter': 1}}, other / 'iter_1.pth')
    make_runner(other, max_iters=4, resume=True, load_from=str(tmp_path / 'a' / 'iter_3.pth')).train()
    assert sorted(p for p in os.listdir(other) if p.endswith('.pth')) == ['iter_1.pth', 'iter_4.pth']


def test_backend_refuses_an_incomplete_checkpoint(tmp_path) -> None:
    dst = tmp_path / 'iter_1.pth'
    torch.save({'w': torch.zeros(2)}, dst)
    good = dst.read_bytes()
    with pytest.raises(ValueError, match='not a complete torch checkpoint'):
        AtomicLocalBackend().put(good[:len(good) - 40], dst)
    assert dst.read_bytes() == good and os.listdir(tmp_path) == ['iter_1.pth']
    AtomicLocalBackend(verify=None).put(b'raw', tmp_path / 'raw.bin')
    assert (tmp_path / 'raw.bin').read_bytes() == b'raw'
    with pytest.raises(ValueError, match='verify'):
        AtomicCheckpointHook(interval=1, verify='sha')


def test_remote_out_dir_keeps_mmengine_writes(tmp_path) -> None:
    hook = AtomicCheckpointHook(interval=1, backend_args=dict(backend='local'))
    assert not hook.atomic
    hook = AtomicCheckpointHook(interval=1)
    assert hook.backend_args is None  # decided in before_train from out_dir
    assert osp.basename(AtomicLocalBackend.__module__.replace('.', '/')) == 'atomic_checkpoint_hook'


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _ScriptedAccuracy(BaseMetric):
    """Reports the given ``acc`` values, one per validation."""

    def __init__(self, values) -> None:
        super().__init__()
        self.values = list(values)

    def process(self, data_batch, data_samples) -> None:
        self.results.append(0)

    def compute_metrics(self, results) -> dict:
        return {'acc': self.values.pop(0)}


def make_val_runner(work_dir, values) -> Runner:
    register_all_modules()
    import tests.toy_components  # noqa: F401 - registers ToyRegressor and its dataset
    loader = dict(batch_size=16, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                  dataset=dict(type='ToyRegressionDataset'), collate_fn=dict(type='default_collate'))
    return Runner(
        model=dict(type='ToyRegressor'), work_dir=str(work_dir),
        experiment_name=f'atomic_best_{uuid.uuid4().hex[:8]}', default_scope='beitlab',
        train_dataloader=loader, val_dataloader=loader,
        train_cfg=dict(by_epoch=False, max_iters=len(values), val_interval=1),
        val_cfg=dict(), val_evaluator=Evaluator([_ScriptedAccuracy(values)]),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1,
                                           by_epoch=False, max_keep_ckpts=1, save_best='acc',
                                           rule='greater')),
        log_level='WARNING')


def test_save_best_keeps_mmengine_semantics(tmp_path) -> None:
    work = tmp_path / 'best'
    make_val_runner(work, [0.1, 0.5, 0.3, 0.9]).train()
    assert sorted(p for p in os.listdir(work) if p.endswith('.pth')) == [
        'best_acc_iter_4.pth', 'iter_4.pth']
    hub = safe_torch_load(str(work / 'iter_4.pth'))['message_hub']['runtime_info']
    assert hub['best_score'] == 0.9 and hub['best_ckpt'] == str(work / 'best_acc_iter_4.pth')


def test_failed_best_save_keeps_the_previous_best(tmp_path, monkeypatch) -> None:
    work = tmp_path / 'best'
    fail_writes_of(monkeypatch, 'best_acc_iter_3.pth')
    with pytest.raises(OSError, match='injected'):
        make_val_runner(work, [0.1, 0.5, 0.9]).train()
    monkeypatch.undo()
    # mmengine removes best_acc_iter_2.pth before it writes the new best
    assert safe_torch_load(str(work / 'best_acc_iter_2.pth'))['meta']['iter'] == 2
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_3.pth')
    assert find_temp_files(work) == [] and not (work / 'best_acc_iter_3.pth').exists()
