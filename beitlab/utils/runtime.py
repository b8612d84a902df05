"""Config preparation shared by tools/train.py and tools/test.py."""
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

from .config_check import check_config_types

__all__ = ['prepare_config']


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
