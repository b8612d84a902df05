"""Train a beitlab (or mmseg / mmdet) config with the mmengine Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm]
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config
from mmengine.runner import Runner

# The repository root, so that configs can ``custom_imports`` modules of projects/.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from beitlab.utils import prepare_config, register_all_modules, shutdown_distributed  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.runtime import add_runner_args, load_config  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model with a beitlab config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or with no value from the latest '
                        'checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='mixed precision training '
                        '(float16 on CUDA, bfloat16 on CPU)')
    add_runner_args(parser,
                    'directory for logs and checkpoints (default: ./work_dirs/<config name>)')
    return parser.parse_args()


def enable_amp(cfg: Config) -> None:
    """float16 with a dynamic loss scale on CUDA (mmengine's AmpOptimWrapper); bfloat16
    autocast without a scaler on CPU (beitlab's AutocastOptimWrapper)."""
    import torch
    wrapper = cfg.optim_wrapper
    if torch.cuda.is_available():
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
        return
    if cfg.get('default_scope') == 'mmdet':
        raise RuntimeError(f'--amp on CPU would run {cfg.filename} in bfloat16, which '
                           f'mmcv\'s CPU detection ops (RoIAlign, nms) do not support; '
                           f'use --amp on a CUDA machine')
    wrapper.type = 'beitlab.AutocastOptimWrapper'
    wrapper.dtype = 'bfloat16'
    wrapper.pop('loss_scale', None)


def main() -> None:
    args = parse_args()
    register_all_modules()
    cfg = load_config(args)

    if args.amp:
        enable_amp(cfg)

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    prepare_config(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    shutdown_distributed()


if __name__ == '__main__':
    run_cli(main)
