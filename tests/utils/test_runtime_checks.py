"""beitlab.utils.runtime: the distributed timeout reaches the process group, output folders
are checked before anything is built, ``--cfg-options`` reads ``dict(...)`` or says how to
write nested options, and collective timeouts are reported with the rank."""
import argparse
import datetime
import os
import re
import tempfile

import pytest
import torch
import torch.distributed as torch_dist
from mmengine.config import Config

from beitlab.utils import runtime
from beitlab.utils.runtime import (
    DirectoryNotWritableError,
    add_runner_args,
    check_writable_dir,
    describe_distributed_error,
    dist_timeout,
    prepare_config,
)

from ..tools_helpers import REPO_ROOT, run_tool

TOY = 'tests/data/configs/toy_regression.py'


def toy_cfg(tmp_path, **extra) -> Config:
    cfg = Config.fromfile(str(REPO_ROOT / TOY))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.launcher = 'none'
    cfg.merge_from_dict(extra)
    return cfg


def parse_options(*options: str) -> dict:
    parser = argparse.ArgumentParser()
    add_runner_args(parser, 'work dir')
    return parser.parse_args(['--cfg-options', *options]).cfg_options


# ----------------------------------------------------------------------------- timeouts
def test_cpu_process_group_gets_the_configured_timeout(tmp_path, monkeypatch) -> None:
    seen = {}
    monkeypatch.setattr(torch_dist, 'is_initialized', lambda: False)
    monkeypatch.setattr(torch_dist, 'init_process_group', lambda **kw: seen.update(kw))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '2')
    cfg = toy_cfg(tmp_path)
    cfg.launcher = 'pytorch'
    cfg.env_cfg.dist_cfg.timeout = 12
    prepare_config(cfg)
    assert seen['backend'] == 'gloo' and seen['rank'] == 0 and seen['world_size'] == 2
    assert seen['timeout'] == datetime.timedelta(seconds=12)


def test_cuda_keeps_the_timeout_for_mmengine_init_dist(tmp_path, monkeypatch) -> None:
    """On CUDA mmengine's init_dist reads dist_cfg: prepare_config switches to nccl and
    keeps the timeout in seconds, which init_dist turns into a timedelta."""
    from mmengine.dist import utils as mm_dist
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = toy_cfg(tmp_path)
    cfg.launcher = 'pytorch'
    cfg.env_cfg.dist_cfg.timeout = 42
    prepare_config(cfg)
    assert dict(cfg.env_cfg.dist_cfg) == dict(backend='nccl', timeout=42)
    seen = {}
    monkeypatch.setattr(torch.cuda, 'set_device', lambda _: None)
    monkeypatch.setattr(mm_dist.torch_dist, 'init_process_group', lambda **kw: seen.update(kw))
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('LOCAL_RANK', '0')
    mm_dist.init_dist('pytorch', **cfg.env_cfg.dist_cfg)
    assert seen == dict(backend='nccl', timeout=datetime.timedelta(seconds=42))


@pytest.mark.parametrize('base, expected', [('default_runtime.py', 600),
                                            ('mmseg_runtime.py', 600),
                                            ('mmdet_runtime.py', 1800)])
def test_runtime_bases_set_a_timeout(base, expected) -> None:
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / '_base_' / base))
    assert cfg.env_cfg.dist_cfg.timeout == expected
    assert dist_timeout(cfg.env_cfg.dist_cfg) == datetime.timedelta(seconds=expected)


@pytest.mark.parametrize('bad', ['10', 0, -5, True, [10], float('inf')])
def test_bad_timeout_is_named(tmp_path, bad) -> None:
    cfg = toy_cfg(tmp_path)
    cfg.env_cfg.dist_cfg.timeout = bad
    with pytest.raises(ValueError, match=r'env_cfg\.dist_cfg\.timeout=.*positive number of '
                       'seconds'):
        prepare_config(cfg)


def test_timeout_message_names_rank_operation_and_setting() -> None:
    err = RuntimeError('[third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out '
                       'waiting 10000ms for recv operation to complete')
    text = describe_distributed_error(err)
    assert text.startswith('rank ') and 'a collective operation (recv) timed out after 10 s' \
        in text and 'env_cfg.dist_cfg.timeout' in text and 'Timed out waiting 10000ms' in text
    nccl = RuntimeError('[Rank 1] Watchdog caught collective operation timeout: '
                        'WorkNCCL(SeqNum=5, OpType=ALLREDUCE, NumelIn=4, NumelOut=4, '
                        'Timeout(ms)=600000) ran for 600012 milliseconds before timing out.')
    assert '(ALLREDUCE) timed out after 600 s' in describe_distributed_error(nccl)
    assert describe_distributed_error(RuntimeError('CUDA out of memory')) is None


# --------------------------------------------------------------------- output folders
def test_work_dir_under_a_file_fails_before_training(tmp_path) -> None:
    afile = tmp_path / 'afile'
    afile.write_text('not a folder')
    work = afile / 'sub'
    proc = run_tool('train.py', TOY, '--work-dir', work, check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith('train.py: error:')]
    assert line and f"work_dir '{work}'" in line[0] and 'not writable' in line[0] \
        and f"'{afile}' is a file" in line[0], proc.stderr[-2000:]
    assert 'Iter(train)' not in proc.stdout + proc.stderr


def test_checkpoint_folder_under_a_file_fails_before_training(tmp_path) -> None:
    """Without the check, both iterations ran and the first checkpoint save failed."""
    afile = tmp_path / 'afile'
    afile.write_text('')
    proc = run_tool('train.py', TOY, '--work-dir', tmp_path / 'work', '--cfg-options',
                    f'default_hooks.checkpoint.out_dir={afile}/ckpts', check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith('train.py: error:')]
    assert line and 'checkpoint folder (default_hooks.checkpoint.out_dir)' in line[0] \
        and f"'{afile}/ckpts/work'" in line[0] and 'not writable' in line[0], proc.stderr[-2000:]
    assert 'Iter(train)' not in proc.stdout + proc.stderr


def test_unwritable_folder_is_found_by_a_test_write(tmp_path, monkeypatch) -> None:
    """``os.access`` says yes to root for a read-only folder: the check also writes a file
    (made to fail here, as a read-only mount would)."""
    folder = tmp_path / 'ro'
    folder.mkdir()

    def refuse(*args, **kwargs):
        raise PermissionError(13, 'Read-only file system')

    monkeypatch.setattr(tempfile, 'NamedTemporaryFile', refuse)
    with pytest.raises(DirectoryNotWritableError,
                       match=r"work_dir '.*ro' is not writable: writing a file there failed "
                       r'\(Read-only file system\); choose another'):
        check_writable_dir(str(folder), 'work_dir', 'choose another with --work-dir DIR')
    monkeypatch.undo()
    check_writable_dir(str(folder), 'work_dir', '')
    assert os.listdir(folder) == []  # the test file is removed


# ------------------------------------------------------------------------ cfg-options
def test_cfg_options_read_dict_values() -> None:
    opts = parse_options('model.backbone=dict(drop_path_rate=0.1,arch=dict(num_layers=2))',
                         'custom_hooks=[dict(type=EMAHook,momentum=-1e-4)]', 'a.b=1,2', 'c=SGD')
    assert opts == {'model.backbone': dict(drop_path_rate=0.1, arch=dict(num_layers=2)),
                    'custom_hooks': [dict(type='EMAHook', momentum=-1e-4)],
                    'a.b': [1, 2], 'c': 'SGD'}
    cfg = Config(dict(model=dict(backbone=dict(drop_path_rate=0.0, arch=dict(num_layers=12),
                                               img_size=224))))
    cfg.merge_from_dict(opts)
    # merged like model.backbone.drop_path_rate=0.1 model.backbone.arch.num_layers=2
    assert cfg.model.backbone == dict(drop_path_rate=0.1, arch=dict(num_layers=2), img_size=224)


@pytest.mark.parametrize('option, message', [
    ('model=dict(a=os.getcwd())', "'os.getcwd()' is not a literal value"),
    ('model=dict(a=1', 'not valid Python syntax'),
    ('model=f(1,2)', "cannot read 'f(1,2)'"),
    ('model', "expected KEY=VALUE"),
])
def test_cfg_options_errors_say_how_to_write_nested_options(option, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        parse_options(option)
    if '=' in option:
        assert 'model.backbone.drop_path_rate=0.1' in str(info.value)


def test_cfg_options_dict_through_train_py(tmp_path) -> None:
    proc = run_tool('train.py', TOY, '--work-dir', tmp_path / 'w', '--cfg-options',
                    'train_cfg=dict(max_iters=1)', 'optim_wrapper=dict(optimizer=dict(lr=0.5))')
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [1/1]' in log and 'lr: 5.0000e-01' in log, log[-2000:]
    bad = run_tool('train.py', TOY, '--work-dir', tmp_path / 'w2', '--cfg-options',
                   'train_cfg=dict(max_iters=1,by_epoch=(False)', check=False)
    lines = [ln for ln in bad.stderr.splitlines() if ln.startswith('train.py: error:')]
    assert bad.returncode == 1 and len(lines) == 1, bad.stderr[-2000:]
    assert 'not valid Python syntax' in lines[0] and 'RecursionError' not in bad.stderr


def test_runtime_exports() -> None:
    for name in runtime.__all__:
        assert hasattr(runtime, name), name
