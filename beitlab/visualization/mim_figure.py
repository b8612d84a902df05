"""The masked-image-modeling figure of ``tools/visualization/vis_mim.py`` (BEiT Sec. 2.3).

One row per image: the ViT view, the corrupted input (masked patches gray), the masked
patches coloured right (green) / wrong (red) and, when the tokenizer decodes tokens, the
decoding of the true tokens and of the tokens with the masked ones predicted. A white band
on top gives the masked-token (MLM) accuracy of the figure and names each column.

Used by the tool and by :class:`~beitlab.engine.hooks.mim_visualization_hook.MIMVisualizationHook`
(the same picture sent to the visualiser's backends during training). Nothing here registers.
"""
import copy
from typing import List, NamedTuple, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import nn

from .mim_visualizer import MIMVisualizer

__all__ = ['COLUMN_LABELS', 'SEPARATOR', 'MIMFigure', 'eval_pipeline', 'to_uint8',
           'masked_token_accuracy', 'draw_header', 'draw_mim_figure']

# Column labels (at most two lines each), in the order MIMVisualizer draws the panels.
COLUMN_LABELS = ('image', 'masked\ninput', 'masked tokens\nright / wrong', 'true tokens\ndecoded',
                 'predicted tokens\ndecoded')
SEPARATOR = 4   # MIMVisualizer's white gap between panels and between rows (px)
_RANDOM_STEPS = ('ColorJitter', 'RandomFlip', 'mmcv.RandomFlip')
_CROP_STEPS = ('TwoViewRandomResizedCrop', 'beitlab.TwoViewRandomResizedCrop')


def eval_pipeline(pipeline: Sequence[dict]) -> List[dict]:
    """The deterministic part of a MIM training pipeline: without colour jitter and flip,
    the two-view crop taking the whole image (a centre square crop). The mask step stays:
    it draws from the mask generator (numpy's global random state)."""
    out = []
    for step in pipeline:
        step = copy.deepcopy(step)
        if step['type'] in _RANDOM_STEPS:
            continue
        if step['type'] in _CROP_STEPS:
            step.update(scale=(1.0, 1.0), ratio=(1.0, 1.0))
        out.append(step)
    return out


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[3, H, W] float in [0, 1] -> [H, W, 3] uint8."""
    return (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


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


class MIMFigure(NamedTuple):
    """What :func:`draw_mim_figure` returns."""

    image: np.ndarray        # [H, W, 3] uint8 RGB: header band and one row per image
    accuracy: float          # masked-token accuracy over the drawn images (nan: none masked)
    hits: int                # masked patches predicted right
    masked: int              # masked patches
    num_images: int
    labels: Tuple[str, ...]  # the column labels drawn


@torch.no_grad()
def draw_mim_figure(model: nn.Module, batch: dict, scale: int = 4) -> MIMFigure:
    """Run a BEiT-style model's ``'predict'`` mode on ``batch`` and draw the figure.

    Args:
        model: an algorithm whose ``predict`` fills ``pred_tokens``, ``target_tokens``,
            ``correct`` and keeps ``mask`` (``BEiT``, ``BEiTv2``), with a
            ``data_preprocessor`` that has ``to_rgb`` and a ``target_generator.tokenizer``
            (its ``decode_tokens``, when present, gives the two decoded columns).
        batch: ``pseudo_collate`` of the deterministic pipeline's outputs
            (``inputs = [[img_vit, img_tok], ...]`` uint8 as loaded, data samples with masks);
            the data samples are filled in place.
        scale: nearest-neighbour upscaling of each panel.
    """
    raw_vit = batch['inputs'][0]
    data = model.data_preprocessor(batch, False)
    samples = model(data['inputs'], data['data_samples'], mode='predict')
    tokenizer = model.target_generator.tokenizer
    decode = getattr(tokenizer, 'decode_tokens', None)
    if decode is not None:
        gt = torch.stack([s.target_tokens for s in samples])
        mixed = torch.stack([torch.where(s.mask, s.pred_tokens, s.target_tokens) for s in samples])
        dec_gt, dec_pred = decode(gt), decode(mixed)

    visualizer = MIMVisualizer(scale=scale)
    rows = []
    for i, sample in enumerate(samples):
        view = raw_vit[i].permute(1, 2, 0).cpu().numpy()
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
    header = draw_header(title, labels, raw_vit[0].shape[-1] * scale)
    if header.shape[1] != rows[0].shape[1]:
        raise RuntimeError(f'header width {header.shape[1]} != row width {rows[0].shape[1]}')
    image = np.concatenate([header, visualizer.stack_rows(rows)], axis=0)
    return MIMFigure(image, accuracy, hits, total, len(samples), tuple(labels))
