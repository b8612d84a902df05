"""Train a beitlab (or mmseg / mmdet) config with the mmengine Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT] | --auto-resume] [--amp]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm]
                                 [--fast] [--no-flush-denormal]

``--resume`` without a value and ``--auto-resume`` continue from the newest intact
checkpoint of the work dir (``beitlab.utils.find_resume_checkpoint``); see
``docs/reliability.md``. Flush-to-zero is set in every CPU thread before anything is
computed (``beitlab.utils.denormals``; ``--no-flush-denormal`` keeps IEEE subnormals).
``--fast`` (or the config key ``fast_path = True``) switches the fast path on
(``beitlab/engine/fast_path.py``; ``docs/performance.md``).
"""
import argparse
import os.path as osp
import sys
from typing import Optional

from mmengine.config import Config

# The repository root, so that configs can ``custom_imports`` modules of projects/.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from beitlab.engine.fast_path import apply_fast_path  # noqa: E402
from beitlab.engine.runner import BeitlabRunner  # noqa: E402
from beitlab.utils import prepare_config, register_all_modules, shutdown_distributed  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.denormals import setup_flush_denormal  # noqa: E402
from beitlab.utils.resume import checkpoint_problem, find_resume_checkpoint  # noqa: E402
from beitlab.utils.runtime import add_runner_args, load_config, named_distributed_errors  # noqa: E402
from beitlab.utils.visualization_backends import enable_tensorboard  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model with a beitlab config')
    parser.add_argument('config', help='config file path')
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument('--resume', nargs='?', type=str, const='auto', metavar='CKPT',
                        help='resume from CKPT, or with no value from the newest intact '
                        'checkpoint of the work dir (last_checkpoint, else the newest intact '
                        'iter_*.pth / epoch_*.pth); an error when there is none')
    resume.add_argument('--auto-resume', action='store_true',
                        help='for pre-emptible jobs: resume like --resume without a value when '
                        'the work dir holds an intact checkpoint, otherwise start from '
                        'iteration 0 (and say so in the log); the same command can be rerun '
                        'after every restart')
    parser.add_argument('--tensorboard', action='store_true',
                        help='also log to TensorBoard (pip install tensorboard); the config key '
                        'use_tensorboard = True does the same')
    parser.add_argument('--amp', action='store_true', help='mixed precision training '
                        '(float16 on CUDA, bfloat16 on CPU)')
    parser.add_argument('--fast', action='store_true',
                        help='the fast path (bf16 autocast, fused AdamW, bf16 tokenizer, exact '
                        'mask counts, the BEiT loss compiled as one function); the config key '
                        'fast_path = True does the same, --cfg-options fast_path=False turns it off')
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


def apply_resume(cfg: Config, args: argparse.Namespace) -> Optional[str]:
    """Set ``cfg.resume`` / ``cfg.load_from`` from ``--resume`` / ``--auto-resume``.

    A config with ``resume = True`` and no ``load_from`` (mmengine's automatic resume, which
    trusts ``last_checkpoint`` blindly) is treated like ``--auto-resume``. Returns the line to
    log when training starts fresh for want of a checkpoint.

    Raises:
        FileNotFoundError: ``--resume`` without a value and no intact checkpoint in the work
            dir, or ``--resume CKPT`` naming a file that does not exist.
        ValueError: ``--resume CKPT`` naming a truncated or unreadable file.
    """
    if args.resume is not None and args.resume != 'auto':
        ckpt = args.resume
        if '://' not in ckpt:
            problem = checkpoint_problem(ckpt)
            if problem is not None:
                error = FileNotFoundError if not osp.exists(ckpt) else ValueError
                raise error(f'--resume {ckpt!r}: cannot resume from it: {problem}')
        cfg.resume = True
        cfg.load_from = ckpt
        return None
    auto = args.auto_resume or (args.resume is None and bool(cfg.get('resume'))
                                and not cfg.get('load_from'))
    if args.resume is None and not auto:
        return None
    ckpt = find_resume_checkpoint(cfg.work_dir)
    if ckpt is not None:
        cfg.resume = True
        cfg.load_from = ckpt
        return None
    if auto:
        cfg.resume = False
        return f'no checkpoint in {cfg.work_dir}: starting from iteration 0'
    raise FileNotFoundError(
        f'--resume: nothing to resume from in the work dir {cfg.work_dir!r} (no intact '
        f'last_checkpoint, iter_*.pth or epoch_*.pth); train without --resume, pass '
        f'--resume CKPT, or use --auto-resume to start fresh when there is no checkpoint')


def main() -> None:
    args = parse_args()
    flush_denormal = setup_flush_denormal(args.flush_denormal)
    register_all_modules()
    cfg = load_config(args)
    enable_tensorboard(cfg, args.tensorboard)

    if args.amp:
        enable_amp(cfg)
    fast_path = apply_fast_path(cfg, args.fast)

    fresh_start = apply_resume(cfg, args)

    prepare_config(cfg)
    runner = BeitlabRunner.from_cfg(cfg)
    flush_denormal.log(runner.logger)
    if fast_path:
        runner.logger.info(f'fast path: {", ".join(fast_path)}')
    if fresh_start:
        runner.logger.info(fresh_start)
    with named_distributed_errors():
        runner.train()
    shutdown_distributed()


if __name__ == '__main__':
    run_cli(main)
