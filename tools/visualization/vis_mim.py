"""Show what a BEiT model predicts under the mask (BEiT Sec. 2.3, masked image modeling).

    python tools/visualization/vis_mim.py CONFIG CHECKPOINT --out docs/images/beit_mim.png \
        [--num-images 8] [--ann-file meta/val.txt --img-prefix val] [--seed 0]

For each image (the config's training dataset, or another split of it through
``--ann-file``/``--img-prefix``), one row of panels, each upscaled:
  1. the ViT view; 2. the corrupted input (masked patches gray);
  3. the masked patches coloured by whether the predicted visual token is right (green) or
     wrong (red);
  4. when the tokenizer can decode tokens: the decoding of the ground-truth tokens and
  5. of the tokens with the masked ones replaced by the predictions.
Above the rows, a title gives the masked-token (MLM) accuracy of the figure, the fraction
of masked patches over all drawn images whose predicted token equals the true one, and a
row of labels names each column. Views are deterministic: no colour jitter or flip, the
whole image (a centre square crop), masks drawn by the config's mask generator from
``--seed``. The accuracy is also printed.
"""
import argparse
import copy
import os
import os.path as osp
import random
import sys
from typing import Optional

import cv2
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.checkpoint import install_safe_checkpoint_loading, safe_torch_load  # noqa: E402
from beitlab.registry import DATASETS, MODELS  # noqa: E402
from beitlab.utils import register_all_modules  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.runtime import check_config_file  # noqa: E402

# The figure's parts live in beitlab.visualization.mim_figure (also used by
# MIMVisualizationHook during training); they are importable from this tool as before.
from beitlab.visualization.mim_figure import (  # noqa: E402,F401
    COLUMN_LABELS,
    SEPARATOR,
    draw_header,
    draw_mim_figure,
    eval_pipeline,
    masked_token_accuracy,
    to_uint8,
)


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description='visualise BEiT masked-token predictions')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--num-images', type=int, default=8)
    parser.add_argument('--ann-file', default=None, help='replace the dataset ann_file')
    parser.add_argument('--img-prefix', default=None, help="replace data_prefix['img_path']")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--scale', type=int, default=4, help='upscaling of each panel')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)

    register_all_modules(init_default_scope=True)
    install_safe_checkpoint_loading()
    check_config_file(args.config)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model)
    ckpt = safe_torch_load(args.checkpoint)
    state = ckpt.get('state_dict', ckpt)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise KeyError(f'{args.checkpoint!r} does not fit {args.config!r}: missing keys '
                       f'{missing}, unexpected keys {unexpected}')
    model.eval()

    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.pipeline = eval_pipeline(ds_cfg.pipeline)
    if args.ann_file is not None:
        ds_cfg.ann_file = args.ann_file
    if args.img_prefix is not None:
        ds_cfg.data_prefix = dict(img_path=args.img_prefix)
    dataset = DATASETS.build(ds_cfg)
    random.seed(args.seed)
    np.random.seed(args.seed)
    batch = pseudo_collate([dataset[i] for i in range(min(args.num_images, len(dataset)))])
    figure = draw_mim_figure(model, batch, scale=args.scale)
    grid, labels, samples = figure.image, figure.labels, figure.num_images
    accuracy, hits, total = figure.accuracy, figure.hits, figure.masked
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, grid[..., ::-1])
    panels_desc = ' | '.join(label.replace('\n', ' ') for label in labels)
    print(f'saved {samples} rows ({panels_desc}; right green, wrong red) to {args.out}')
    print(f'masked-token accuracy on these images: {hits}/{total} = {accuracy:.4f}')


if __name__ == '__main__':
    run_cli(main)
