"""Command-line and config preparation shared by tools/train.py and tools/test.py."""
import argparse
import os
import os.path as osp
import socket

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction

from .config_check import check_config_types

__all__ = ['add_runner_args', 'check_config_file', 'load_config', 'prepare_config',
           'shutdown_distributed', 'find_free_port']


def add_runner_args(parser: argparse.ArgumentParser, work_dir_help: str) -> None:
    """``--work-dir``, ``--cfg-options``, ``--launcher`` and ``--local-rank``."""
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_dataloader.batch_size=8')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def check_config_file(path: str) -> None:
    """Raise ``FileNotFoundError`` naming ``path`` when the config file does not exist."""
    if not osp.isfile(path):
        where = '' if osp.isabs(path) else f' (relative to the current directory {os.getcwd()})'
        raise FileNotFoundError(f'config file {path!r} does not exist{where}; the configs are '
                                'under configs/ of the repository, e.g. configs/beit/mim_vit-b.py')


def load_config(args: argparse.Namespace) -> Config:
    """The config of ``args.config`` with the arguments of :func:`add_runner_args` applied;
    the work dir defaults to ``./work_dirs/<config name>``."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    check_config_file(args.config)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def _init_cpu_process_group(backend: str) -> None:
    """mmengine's ``init_dist`` calls ``torch.cuda.set_device`` unconditionally;
    on a CPU-only machine the process group is created here instead (env://)."""
    if torch_dist.is_initialized():
        return
    torch_dist.init_process_group(backend=backend, rank=int(os.environ['RANK']),
                                  world_size=int(os.environ['WORLD_SIZE']))


def prepare_config(cfg: Config) -> Config:
    """Validate every ``type`` (fails before anything is built) and set up
    distributed training: nccl on CUDA machines, gloo and CPU DDP otherwise."""
    check_config_types(cfg)
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    launcher = cfg.get('launcher', 'none')
    if torch.cuda.is_available():
        if dist_cfg.get('backend', 'gloo') == 'gloo':
            dist_cfg['backend'] = 'nccl'
    elif launcher != 'none':
        if launcher != 'pytorch':
            raise RuntimeError(f'launcher {launcher!r} needs CUDA on this stack; on a CPU-only '
                               f'machine use tools/dist_train.sh (launcher pytorch, gloo)')
        _init_cpu_process_group(dist_cfg.get('backend', 'gloo'))
        cfg.setdefault('model_wrapper_cfg', dict(type='beitlab.CPUDistributedDataParallel'))
    return cfg


def shutdown_distributed() -> None:
    """Wait for every rank, then destroy the process group.

    Without this, a rank that finishes first exits while gloo's worker threads are
    still joinable and aborts with ``terminate called without an active exception``;
    torchrun then reports the whole job as failed although training completed.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def find_free_port() -> int:
    """A local TCP port nothing listens on now (for torchrun's rendezvous ``PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
