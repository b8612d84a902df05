"""Evaluate a checkpoint on a beitlab (or mmseg / mmdet) config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out preds.pkl]
                         [--show-dir DIR] [--cfg-options k=v ...] [--launcher ...]
                         [--no-flush-denormal]

The metrics are printed and written to ``<work_dir>/metrics.json``.
"""
import argparse
import json
import os
import os.path as osp
import sys

from mmengine.config import Config
from mmengine.dist import is_main_process

# The repository root, so that configs can ``custom_imports`` modules of projects/.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from beitlab.engine.runner import BeitlabRunner  # noqa: E402
from beitlab.utils import prepare_config, register_all_modules, shutdown_distributed  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.denormals import setup_flush_denormal  # noqa: E402
from beitlab.utils.runtime import add_runner_args, load_config, named_distributed_errors  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a checkpoint with a beitlab config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump the raw predictions to this pickle file')
    parser.add_argument('--show-dir', help='save visualisations: mmseg overlays under '
                        '<work_dir>/<show_dir>/vis_data/vis_image, mmdet boxes and masks under '
                        '<work_dir>/<timestamp>/<show_dir>, beitlab hooks under '
                        '<work_dir>/<show_dir>')
    add_runner_args(parser, 'directory for logs and metrics.json')
    return parser.parse_args()


def enable_show_dir(cfg: Config, show_dir: str) -> None:
    """Turn on the config's visualisation hook (mmseg's SegVisualizationHook,
    mmdet's DetVisualizationHook or beitlab's) and point it at ``show_dir``."""
    hooks = cfg.default_hooks
    vis_hook = hooks.get('visualization')
    if vis_hook is None:
        raise KeyError(f'--show-dir {show_dir!r} needs a `default_hooks.visualization` hook '
                       f'in the config; {cfg.filename} has none')
    vis_hook['draw'] = True
    vis_hook['interval'] = 1
    if 'DetVisualizationHook' in vis_hook['type'] or 'SegVisualizationHook' in vis_hook['type']:
        # mmdet's hook takes test_out_dir; mmseg's writes to the visualizer save_dir.
        if 'DetVisualizationHook' in vis_hook['type']:
            vis_hook['test_out_dir'] = show_dir
        else:
            cfg.visualizer['save_dir'] = osp.join(cfg.work_dir, show_dir)
    else:
        vis_hook['out_dir'] = show_dir


def main() -> None:
    args = parse_args()
    flush_denormal = setup_flush_denormal(args.flush_denormal)
    register_all_modules()
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist (relative paths '
                                f'are read from {os.getcwd()}); give a file written by '
                                'tools/train.py or a converter in tools/model_converters/')
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir:
        enable_show_dir(cfg, args.show_dir)
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must end with .pkl or .pickle, got {args.out!r}')
        evaluator = cfg.test_evaluator
        dump = dict(type='DumpResults', out_file_path=args.out)
        cfg.test_evaluator = [*evaluator, dump] if isinstance(evaluator, list) \
            else [evaluator, dump]

    prepare_config(cfg)
    runner = BeitlabRunner.from_cfg(cfg)
    flush_denormal.log(runner.logger)
    with named_distributed_errors():
        metrics = runner.test()
    if is_main_process():
        os.makedirs(cfg.work_dir, exist_ok=True)
        out_json = osp.join(cfg.work_dir, 'metrics.json')
        with open(out_json, 'w') as f:
            json.dump({k: float(v) if isinstance(v, (int, float)) or hasattr(v, 'item') else v
                       for k, v in metrics.items()}, f, indent=2)
        print(json.dumps(metrics, indent=2, default=float))
        print(f'metrics written to {out_json}')
    shutdown_distributed()


if __name__ == '__main__':
    run_cli(main)
