"""Config preparation shared by tools/train.py and tools/test.py."""
import torch
from mmengine.config import Config

from .config_check import check_config_types

__all__ = ['prepare_config']


def prepare_config(cfg: Config) -> Config:
    """Validate every ``type`` (fails before anything is built) and pick the
    distributed backend: nccl on CUDA machines, gloo otherwise."""
    check_config_types(cfg)
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if torch.cuda.is_available() and dist_cfg.get('backend', 'gloo') == 'gloo' \
            and not dist_cfg.get('force_backend', False):
        dist_cfg['backend'] = 'nccl'
    dist_cfg.pop('force_backend', None)
    return cfg
