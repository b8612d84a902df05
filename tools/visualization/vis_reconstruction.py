"""Save a PNG grid of original vs. reconstructed images for a trained tokenizer.

    python tools/visualization/vis_reconstruction.py CONFIG CHECKPOINT \
        --out docs/images/dvae_fashion-mnist_recon.png [--num-images 32] [--split test]

Images are the first ``--num-images`` of the config's ``<split>_dataloader`` dataset; each
cell shows the original (left) and the reconstruction (right).
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional

import mmcv
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.runner import load_checkpoint

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.checkpoint import install_safe_checkpoint_loading  # noqa: E402
from beitlab.registry import DATASETS, MODELS  # noqa: E402
from beitlab.utils import register_all_modules  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.runtime import check_config_file  # noqa: E402
from beitlab.visualization.reconstruction_grid import reconstruction_grid  # noqa: E402


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description='original vs. reconstruction grid')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='output PNG file')
    parser.add_argument('--num-images', type=int, default=32)
    parser.add_argument('--ncols', type=int, default=None, help='pairs per row')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='test')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. test_dataloader.dataset.data_root=X')
    args = parser.parse_args(argv)

    register_all_modules(init_default_scope=True)
    install_safe_checkpoint_loading()
    check_config_file(args.config)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    model.eval()
    dataset = DATASETS.build(cfg[f'{args.split}_dataloader'].dataset)
    batch = pseudo_collate([dataset[i] for i in range(min(args.num_images, len(dataset)))])
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        samples = model(data['inputs'], data['data_samples'], mode='predict')
    grid = reconstruction_grid(torch.stack([s.gt_img for s in samples]),
                               torch.stack([s.pred_img for s in samples]), ncols=args.ncols)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    mmcv.imwrite(grid[..., ::-1], args.out)  # mmcv writes BGR
    print(f'saved {len(samples)} original/reconstruction pairs to {args.out}')


if __name__ == '__main__':
    run_cli(main)
