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
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.registry import DATASETS, MODELS  # noqa: E402
from beitlab.utils import install_safe_checkpoint_loading, register_all_modules, safe_torch_load  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.runtime import check_config_file  # noqa: E402
from beitlab.visualization.mim_visualizer import MIMVisualizer  # noqa: E402


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


# Column labels (at most two lines each), in the order MIMVisualizer draws the panels.
COLUMN_LABELS = ('image', 'masked\ninput', 'masked tokens\nright / wrong', 'true tokens\ndecoded',
                 'predicted tokens\ndecoded')
SEPARATOR = 4   # MIMVisualizer's white gap between panels and between rows (px)


def masked_token_accuracy(pred_tokens: torch.Tensor, target_tokens: torch.Tensor,
                          masks: torch.Tensor) -> Tuple[float, int, int]:
    """MLM accuracy over a set of images: the fraction of masked patches whose predicted
    token equals the true one.

    Args:
        pred_tokens, target_tokens: ``[B, h, w]`` (or ``[B, N]``) token ids.
        masks: bool, same shape; True where the patch was masked.

    Returns:
        ``(accuracy, hits, masked)``; accuracy is ``nan`` when no patch is masked.
    """
    if not pred_tokens.shape == target_tokens.shape == masks.shape:
        raise ValueError(f'pred_tokens {tuple(pred_tokens.shape)}, target_tokens '
                         f'{tuple(target_tokens.shape)} and masks {tuple(masks.shape)} differ')
    masks = masks.bool()
    hits = int(((pred_tokens == target_tokens) & masks).sum())
    masked = int(masks.sum())
    return (hits / masked if masked else float('nan')), hits, masked


def _put_lines(img: np.ndarray, lines: Sequence[str], x0: int, width: int, y0: int,
               line_h: int, scale: float) -> None:
    """Black text, each line centred in ``[x0, x0 + width)``, baselines from ``y0``."""
    for k, line in enumerate(lines):
        (tw, _), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        org = (x0 + max((width - tw) // 2, 0), y0 + (k + 1) * line_h - line_h // 4)
        cv2.putText(img, line, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _fit_scale(texts: Sequence[str], width: int, largest: float) -> float:
    """The largest font scale <= ``largest`` at which every text fits in ``width`` px."""
    scale = largest
    while scale > 0.25 and any(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
                               > width for t in texts):
        scale -= 0.05
    return scale


def draw_header(title: str, labels: Sequence[str], panel_width: int,
                sep: int = SEPARATOR) -> np.ndarray:
    """A white ``[H, W, 3]`` uint8 RGB band for the top of the figure: ``title`` on the
    first line, then each of ``labels`` (``\\n`` for a second line) centred above its
    column of width ``panel_width``; ``W`` is that of a row of ``len(labels)`` panels
    separated by ``sep``. ``H`` depends on ``panel_width`` and the labels, not the title."""
    width = len(labels) * panel_width + (len(labels) - 1) * sep
    label_lines = [label.split('\n') for label in labels]
    label_scale = _fit_scale([t for lines in label_lines for t in lines], panel_width - 4, 0.5)
    title_scale = _fit_scale([title], width - 8, 0.6)
    title_h = int(round(34 * 0.6)) + 6   # the same whatever the title's length
    line_h = int(round(30 * label_scale)) + 2
    n_lines = max(len(lines) for lines in label_lines)
    header = np.full((title_h + n_lines * line_h + sep, width, 3), 255, np.uint8)
    _put_lines(header, [title], 0, width, 0, title_h, title_scale)
    for i, lines in enumerate(label_lines):
        _put_lines(header, lines, i * (panel_width + sep), panel_width, title_h, line_h,
                   label_scale)
    return header


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
    rows = []
    for i, sample in enumerate(samples):
        view = raw_vit[i].permute(1, 2, 0).numpy()
        view = np.ascontiguousarray(view[..., ::-1] if model.data_preprocessor.to_rgb else view)
        mask = sample.mask.cpu().numpy()
        correct = sample.correct.cpu().numpy()
        extra = [to_uint8(dec_gt[i]), to_uint8(dec_pred[i])] if decode is not None else []
        rows.append(visualizer.draw_mim_row(view, mask, correct, extra))
    accuracy, hits, total = masked_token_accuracy(
        torch.stack([s.pred_tokens for s in samples]),
        torch.stack([s.target_tokens for s in samples]), torch.stack([s.mask for s in samples]))
    labels = COLUMN_LABELS if decode is not None else COLUMN_LABELS[:3]
    title = (f'MLM accuracy {accuracy:.3f}: {hits}/{total} masked patches predicted right '
             f'({len(samples)} images)')
    header = draw_header(title, labels, raw_vit[0].shape[-1] * args.scale)
    if header.shape[1] != rows[0].shape[1]:
        raise RuntimeError(f'header width {header.shape[1]} != row width {rows[0].shape[1]}')
    grid = np.concatenate([header, visualizer.stack_rows(rows)], axis=0)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, grid[..., ::-1])
    panels_desc = ' | '.join(label.replace('\n', ' ') for label in labels)
    print(f'saved {len(samples)} rows ({panels_desc}; right green, wrong red) to {args.out}')
    print(f'masked-token accuracy on these images: {hits}/{total} = {accuracy:.4f}')


if __name__ == '__main__':
    run_cli(main)
