"""The masked-image-modeling figure of ``tools/visualization/vis_mim.py`` (BEiT Sec. 2.3).

One row per image: the ViT view, the corrupted input (masked patches gray), the masked
patches coloured right (green) / wrong (red) and, when the tokenizer decodes tokens, the
decoding of the true tokens and of the tokens with the masked ones predicted. A white band
on top gives the masked-token (MLM) accuracy of the figure and names each column.

For pixel-target algorithms (MAE, SimMIM: a ``reconstruct`` method) :func:`draw_pixel_figure`
draws instead, per image, the view, the masked input and the reconstruction: the predicted
pixels pasted into the masked patches over the visible ones (MAE Fig. 2), with the data
preprocessor's mean / std undone for display.

Used by the tool and by :class:`~beitlab.engine.hooks.mim_visualization_hook.MIMVisualizationHook`
(the same picture sent to the visualiser's backends during training). Nothing here registers.
"""
import copy
from typing import List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import nn

from .mim_visualizer import MIMVisualizer, paint_patches

__all__ = ['COLUMN_LABELS', 'PIXEL_COLUMN_LABELS', 'SEPARATOR', 'MIMFigure', 'PixelFigure',
           'eval_pipeline', 'to_uint8', 'masked_token_accuracy', 'draw_header',
           'draw_mim_figure', 'paste_reconstruction', 'draw_pixel_figure']

# Column labels (at most two lines each), in the order MIMVisualizer draws the panels.
COLUMN_LABELS = ('image', 'masked\ninput', 'masked tokens\nright / wrong', 'true tokens\ndecoded',
                 'predicted tokens\ndecoded')
PIXEL_COLUMN_LABELS = ('image', 'masked\ninput', 'reconstruction')
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


def _pixel_mask(mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Patch mask [B, h, w] bool -> pixel mask [B, 1, H, W] for images of ``shape``."""
    h, w = mask.shape[-2:]
    if shape[-2] % h or shape[-1] % w:
        raise ValueError(f'image {tuple(shape)} is not a whole number of patches of the '
                         f'{h} x {w} mask')
    return mask.bool().repeat_interleave(shape[-2] // h, dim=1) \
        .repeat_interleave(shape[-1] // w, dim=2).unsqueeze(1)


def paste_reconstruction(img: torch.Tensor, pred: torch.Tensor,
                         mask: torch.Tensor) -> torch.Tensor:
    """``pred`` in the masked patches, ``img`` in the visible ones.

    Args:
        img, pred: ``[B, C, H, W]`` in the same space.
        mask: ``[B, h, w]`` bool, True = masked; ``H, W`` are whole multiples of ``h, w``.
    """
    if img.shape != pred.shape:
        raise ValueError(f'image {tuple(img.shape)} and prediction {tuple(pred.shape)} differ')
    pixel_mask = _pixel_mask(mask, img.shape)  # [B, 1, H, W]
    return torch.where(pixel_mask, pred.to(img.dtype), img)


class PixelFigure(NamedTuple):
    """What :func:`draw_pixel_figure` returns."""

    image: np.ndarray        # [H, W, 3] uint8 RGB: header band and one row per image
    mse: float               # mean squared error of the masked pixels (model input space)
    masked: int              # masked patches
    num_images: int
    labels: Tuple[str, ...]  # the column labels drawn


def _panel_row(panels: Sequence[np.ndarray], scale: int, sep: int = SEPARATOR) -> np.ndarray:
    """Panels [H, W, 3] uint8 upscaled by ``scale`` side by side with white gaps."""
    up = [cv2.resize(np.ascontiguousarray(p), None, fx=scale, fy=scale,
                     interpolation=cv2.INTER_NEAREST) for p in panels]
    gap = np.full((up[0].shape[0], sep, 3), 255, np.uint8)
    return np.concatenate([x for p in up for x in (p, gap)][:-1], axis=1)


@torch.no_grad()
def draw_pixel_figure(model: nn.Module, batch: dict, scale: int = 4,
                      seed: Optional[int] = 0) -> PixelFigure:
    """Run a pixel-target model's ``reconstruct`` on ``batch`` and draw the figure.

    Args:
        model: an algorithm with ``reconstruct(img, mask) -> (pred [B, C, H, W], mask
            [B, h, w])`` (``MAE``, ``SimMIM``) and a ``data_preprocessor`` with ``mean``,
            ``std`` (0..255 scale) and ``to_rgb``. A model with ``draws_own_mask`` (MAE)
            gets ``mask=None`` and draws its mask from torch's random state, seeded with
            ``seed`` (the global state is left as it was); the others get the data samples'
            masks.
        batch: as for :func:`draw_mim_figure`.
        scale: nearest-neighbour upscaling of each panel.
        seed: seed of the model's own masks (None: the current random state).
    """
    raw_vit = batch['inputs'][0]
    pre = model.data_preprocessor
    data = pre(batch, False)
    inputs = data['inputs']
    img = inputs[0] if isinstance(inputs, (list, tuple)) else inputs  # [B, C, H, W]
    if getattr(model, 'draws_own_mask', False):
        masks = None
    else:
        samples = data['data_samples'] or []
        if not samples or not all(hasattr(s, 'mask') for s in samples):
            raise ValueError(f'draw_pixel_figure: {type(model).__name__} takes its mask from '
                             'data_samples[i].mask; the pipeline has no mask step')
        masks = torch.stack([torch.as_tensor(s.mask) for s in samples]).to(img.device).bool()
    cuda = [img.device.index or 0] if img.device.type == 'cuda' else []
    with torch.random.fork_rng(devices=cuda, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        pred, mask = model.reconstruct(img, masks)
    pasted = paste_reconstruction(img, pred, mask)
    err = (pred.float() - img.float()) ** 2
    err = err[_pixel_mask(mask, img.shape).expand_as(img)]
    mse = float(err.mean()) if err.numel() else float('nan')
    mean = getattr(pre, 'mean', torch.zeros(1))
    std = getattr(pre, 'std', torch.ones(1))
    shown = (pasted.float() * std.to(img.device) + mean.to(img.device)) / 255.0

    rows = []
    for i in range(img.shape[0]):
        view = raw_vit[i].permute(1, 2, 0).cpu().numpy()
        view = np.ascontiguousarray(view[..., ::-1] if getattr(pre, 'to_rgb', False) else view)
        m = mask[i].cpu().numpy()
        rows.append(_panel_row([view, paint_patches(view, m, MIMVisualizer.GRAY, 1.0),
                                to_uint8(shown[i])], scale))
    masked = int(mask.sum())
    labels = PIXEL_COLUMN_LABELS
    title = (f'reconstruction MSE {mse:.4f} on {masked} masked patches ({img.shape[0]} images)')
    header = draw_header(title, labels, raw_vit[0].shape[-1] * scale)
    if header.shape[1] != rows[0].shape[1]:
        raise RuntimeError(f'header width {header.shape[1]} != row width {rows[0].shape[1]}')
    image = np.concatenate([header, MIMVisualizer(scale=scale).stack_rows(rows)], axis=0)
    return PixelFigure(image, mse, masked, img.shape[0], tuple(labels))
