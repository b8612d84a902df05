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
Views are deterministic: no colour jitter or flip, the whole image (a centre square crop),
masks drawn by the config's mask generator from ``--seed``. The masked-token accuracy over
the shown images is printed.
"""
import argparse
import copy
import os
import os.path as osp
import random
from typing import Optional

import cv2
import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate

from beitlab.registry import DATASETS, MODELS
from beitlab.utils import install_safe_checkpoint_loading, register_all_modules, safe_torch_load
from beitlab.visualization.mim_visualizer import MIMVisualizer


def eval_pipeline(pipeline: list) -> list:
    """The training pipeline without colour jitter and flip, cropping the whole image."""
    out = []
    for step in pipeline:
        step = copy.deepcopy(step)
        if step['type'] in ('ColorJitter', 'RandomFlip', 'mmcv.RandomFlip'):
            continue
        if step['type'] == 'TwoViewRandomResizedCrop':
            step.update(scale=(1.0, 1.0), ratio=(1.0, 1.0))
        out.append(step)
    return out


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[3, H, W] float in [0, 1] -> [H, W, 3] uint8."""
    return (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


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
    raw_vit = batch['inputs'][0]
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        samples = model(data['inputs'], data['data_samples'], mode='predict')
        tokenizer = model.target_generator.tokenizer
        decode = getattr(tokenizer, 'decode_tokens', None)
        if decode is not None:
            gt = torch.stack([s.target_tokens for s in samples])
            mixed = torch.stack([torch.where(s.mask, s.pred_tokens, s.target_tokens)
                                 for s in samples])
            dec_gt, dec_pred = decode(gt), decode(mixed)

    visualizer = MIMVisualizer(scale=args.scale)
    rows, hits, total = [], 0, 0
    for i, sample in enumerate(samples):
        view = raw_vit[i].permute(1, 2, 0).numpy()
        view = np.ascontiguousarray(view[..., ::-1] if model.data_preprocessor.to_rgb else view)
        mask = sample.mask.cpu().numpy()
        correct = sample.correct.cpu().numpy()
        hits += int((correct & mask).sum())
        total += int(mask.sum())
        extra = [to_uint8(dec_gt[i]), to_uint8(dec_pred[i])] if decode is not None else []
        rows.append(visualizer.draw_mim_row(view, mask, correct, extra))
    grid = visualizer.stack_rows(rows)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, grid[..., ::-1])
    panels_desc = 'view | masked input | masked patches right (green) / wrong (red)'
    if decode is not None:
        panels_desc += ' | decoded true tokens | decoded with predicted masked tokens'
    print(f'saved {len(samples)} rows ({panels_desc}) to {args.out}')
    print(f'masked-token accuracy on these images: {hits}/{total} = {hits / max(total, 1):.4f}')


if __name__ == '__main__':
    main()
