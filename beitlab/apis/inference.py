"""Use a trained beitlab model from Python: build it, extract features, classify, predict tokens.

Preprocessing (decided once, for every function here): an image goes through the config's
**test pipeline** (``test_dataloader``, else ``val_dataloader``, else a top-level
``test_pipeline``) and the model's data preprocessor in eval mode, exactly as
``tools/test.py`` would feed it. A pre-training (MIM) config has no test pipeline; it gets the
**deterministic part of its training pipeline** (:func:`~beitlab.visualization.mim_figure.eval_pipeline`,
the one ``tools/visualization/vis_mim.py`` uses): no colour jitter or flip, the two-view crop
taking the whole image, the mask drawn by the config's mask generator.

Images are file paths (read by the pipeline's own loading step), numpy arrays ``[H, W, 3]``
RGB or ``[H, W]`` gray, uint8, or PIL images; arrays and PIL images enter the pipeline after
its loading step as the BGR array that step would have produced. They are processed in
batches of ``batch_size``; results are on the CPU, in the order of ``images``.
"""
import copy
import os
import os.path as osp
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope
from torch import Tensor, nn

from .features import POOLINGS, layer_features

__all__ = ['init_model', 'extract_features', 'classify', 'mim_predict', 'inference_pipeline',
           'Classification', 'MIMPrediction', 'checkpoint_state_dict', 'ImageLike']

ImageLike = Union[str, os.PathLike, np.ndarray, Any]
LOADING_STEPS = ('LoadImageChecked', 'beitlab.LoadImageChecked', 'LoadImageFromFile',
                 'mmcv.LoadImageFromFile')


# ---------------------------------------------------------------------------- model
def checkpoint_state_dict(checkpoint: Dict[str, Any], source: str = 'checkpoint',
                          model_keys: Sequence[str] = ()
                          ) -> Tuple[Dict[str, Tensor], str, Dict[str, Any]]:
    """``(state_dict, layout, meta)`` of a loaded checkpoint, with beitlab's names.

    The state dict is found by the one unwrap rule (:mod:`beitlab.checkpoint.unwrap`:
    ``state_dict`` / ``model`` / ``module`` / ``ema``); it is used as it is when a key is one
    of ``model_keys``, and otherwise converted from the registered layout its keys fit
    (:mod:`beitlab.checkpoint.layouts`; an official ``{'model': ...}`` file: bare backbone
    names get ``backbone.``, ``lm_head.*`` (pre-training) and ``head.*`` (fine-tuning) become
    ``head.fc.*``, ``relative_position_index`` buffers are dropped). ``layout`` is
    ``'beitlab'`` or the name of the layout converted from
    (:func:`beitlab.checkpoint.model_state.model_state_dict`).
    """
    from beitlab.checkpoint.model_state import model_state_dict

    if not isinstance(checkpoint, dict):
        raise TypeError(f'{source} holds a {type(checkpoint).__name__}, expected a dict '
                        "({'state_dict': ...}, {'model': ...} or a plain state dict)")
    result = model_state_dict(checkpoint, source, model_keys)
    return dict(result.state), result.layout, result.meta


def init_model(config: Union[str, os.PathLike, Config], checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None) -> nn.Module:
    """Build the model of a beitlab config, load a checkpoint strictly, put it in eval mode.

    Args:
        config: a config file path or a ``Config``.
        checkpoint: read with :func:`beitlab.checkpoint.load_checkpoint_file` (``.pth`` with
            ``weights_only=True``, or ``.safetensors``), in any layout of
            :func:`checkpoint_state_dict`. None keeps the constructor's initialisation
            (``pretrained`` / ``init_cfg`` weights are not loaded: that is training's job).
        device: where the model lives.
        cfg_options: merged into the config first (as ``--cfg-options``).
    Returns:
        the model, with ``model.cfg`` (the config) and ``model.dataset_meta`` (the
        checkpoint's ``meta['dataset_meta']``, or None) set.
    Raises:
        StrictLoadError: the checkpoint's keys or shapes do not fit the model; the message
            lists every missing, unexpected and mis-shaped key.
    """
    from beitlab.checkpoint import load_checkpoint_file
    from beitlab.registry import MODELS
    from beitlab.utils import register_all_modules
    from beitlab.utils.runtime import check_config_file
    from beitlab.utils.strict_load import load_state_dict_strict

    register_all_modules()
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        check_config_file(os.fspath(config))
        cfg = Config.fromfile(os.fspath(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise KeyError(f'config {cfg.filename!r} has no `model` to build')
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'beitlab')):
        model = MODELS.build(copy.deepcopy(cfg.model))
    dataset_meta = None
    if checkpoint is not None:
        ckpt = load_checkpoint_file(checkpoint, map_location='cpu')
        state, _, meta = checkpoint_state_dict(ckpt, repr(checkpoint), list(model.state_dict()))
        load_state_dict_strict(model, state, str(checkpoint), logger=None)
        dataset_meta = meta.get('dataset_meta')
    model.cfg = cfg
    model.dataset_meta = dataset_meta
    return model.to(device).eval()


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device('cpu')


# ---------------------------------------------------------------------------- preprocessing
def inference_pipeline(cfg: Config) -> Tuple[List[dict], str]:
    """``(pipeline, kind)``: the config's test pipeline (``kind='test'``), else the
    deterministic part of its training pipeline (``kind='train-deterministic'``)."""
    from beitlab.visualization.mim_figure import eval_pipeline

    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        dataset = loader.get('dataset') if isinstance(loader, dict) else None
        if isinstance(dataset, dict) and dataset.get('pipeline'):
            return copy.deepcopy(list(dataset['pipeline'])), 'test'
    if cfg.get('test_pipeline'):
        return copy.deepcopy(list(cfg.test_pipeline)), 'test'
    train = cfg.get('train_dataloader', {}).get('dataset', {}).get('pipeline')
    if train:
        return eval_pipeline(train), 'train-deterministic'
    raise KeyError(f'config {cfg.filename!r} has no test pipeline (test_dataloader / '
                   'val_dataloader dataset.pipeline, test_pipeline) and no training pipeline')


class _Preprocessor:
    """The pipeline for paths and, without its loading step, for arrays."""

    def __init__(self, model: nn.Module) -> None:
        cfg = getattr(model, 'cfg', None)
        if cfg is None:
            raise AttributeError('the model has no `cfg`: build it with beitlab.apis.init_model')
        pipeline, self.kind = inference_pipeline(cfg)
        if not pipeline or pipeline[0].get('type') not in LOADING_STEPS:
            raise ValueError(f'the inference pipeline of {cfg.filename!r} must start with an '
                             f'image loading step ({", ".join(LOADING_STEPS)}); it starts with '
                             f'{pipeline[0] if pipeline else "nothing"}')
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'beitlab')):
            self.from_path = Compose(pipeline)
            self.from_array = Compose(pipeline[1:])

    def __call__(self, image: ImageLike) -> dict:
        if isinstance(image, (str, os.PathLike)):
            path = os.fspath(image)
            if not osp.isfile(path):
                raise FileNotFoundError(f'image file {path!r} does not exist')
            return self.from_path(dict(img_path=path))
        img = _as_bgr(image)
        return self.from_array(dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2]))


def _as_bgr(image: Any) -> np.ndarray:
    """PIL image or numpy array (RGB ``[H, W, 3]`` or gray ``[H, W]``, uint8) -> ``[H, W, 3]``
    uint8 BGR, what mmcv's loading gives."""
    if not isinstance(image, np.ndarray):
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - pillow is a dependency of mmcv
            Image = None
        if Image is not None and isinstance(image, Image.Image):
            image = np.asarray(image.convert('RGB'))
        else:
            raise TypeError(f'image of type {type(image).__name__}: expected a file path, a '
                            'numpy array [H, W, 3] RGB / [H, W] gray uint8, or a PIL image')
    if image.dtype != np.uint8:
        raise TypeError(f'image array of dtype {image.dtype}: expected uint8 (0..255)')
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image array of shape {image.shape}: expected [H, W, 3] RGB or [H, W]')
    return np.ascontiguousarray(image[..., ::-1])


def _batches(model: nn.Module, images: Sequence[ImageLike], batch_size: int):
    """Yield ``(data, raw_batch)`` per batch: the data preprocessor's output in eval mode."""
    if isinstance(images, (str, os.PathLike, np.ndarray)) or not isinstance(images, Sequence):
        images = [images]
    if not images:
        raise ValueError('no images given')
    if batch_size < 1:
        raise ValueError(f'batch_size={batch_size} must be >= 1')
    prep = _Preprocessor(model)
    for start in range(0, len(images), batch_size):
        batch = pseudo_collate([prep(img) for img in images[start:start + batch_size]])
        yield model.data_preprocessor(batch, False), batch


def _vit_view(inputs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
    return inputs[0] if isinstance(inputs, (list, tuple)) else inputs


# ---------------------------------------------------------------------------- features
@torch.no_grad()
def extract_features(model: nn.Module, images: Sequence[ImageLike],
                     layers: Union[int, Sequence[int]] = (-1, ), pooling: str = 'cls',
                     batch_size: int = 32) -> List[Tensor]:
    """Backbone features of ``images``, one tensor per layer of ``layers``.

    Args:
        model: from :func:`init_model` (any algorithm whose backbone is a ``BEiTViT``).
        layers: 0-based layer indices, negatives from the end (``-1``: the last layer, after
            the final norm when the backbone has one).
        pooling: ``'cls'`` -> ``[N, D]`` CLS token, ``'mean'`` -> ``[N, D]`` mean of the patch
            tokens, ``'none'`` -> ``[N, 1+P, D]`` every token (P patches).
    """
    if pooling not in POOLINGS:
        raise ValueError(f'pooling={pooling!r} is not one of {POOLINGS}')
    backbone = model.backbone
    per_layer: List[List[Tensor]] = []
    for data, _ in _batches(model, images, batch_size):
        feats = layer_features(backbone, _vit_view(data['inputs']), layers, pooling)
        if not per_layer:
            per_layer = [[] for _ in feats]
        for acc, f in zip(per_layer, feats):
            acc.append(f.float().cpu())
    return [torch.cat(acc) for acc in per_layer]


# ---------------------------------------------------------------------------- classification
class Classification(NamedTuple):
    """Top-k of each image: ``labels`` / ``scores`` ``[N, k]`` (softmax probabilities,
    best first) and ``class_names`` (``[N][k]`` strings, or None when the config and the
    checkpoint name no classes)."""

    labels: Tensor
    scores: Tensor
    class_names: Optional[List[List[str]]]


def _class_names(model: nn.Module) -> Optional[Tuple[str, ...]]:
    """Class names from the checkpoint's ``dataset_meta``, else the config's datasets
    (``classes`` or ``metainfo.classes`` of the test, val, then train dataset)."""
    meta = getattr(model, 'dataset_meta', None) or {}
    if meta.get('classes'):
        return tuple(meta['classes'])
    cfg = getattr(model, 'cfg', None) or {}
    for key in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        dataset = (cfg.get(key) or {}).get('dataset') or {}
        classes = dataset.get('classes') or (dataset.get('metainfo') or {}).get('classes')
        if classes:
            return tuple(classes)
    return None


@torch.no_grad()
def classify(model: nn.Module, images: Sequence[ImageLike], topk: int = 5,
             batch_size: int = 32) -> Classification:
    """Top-``topk`` classes of each image by a classifier (``ImageClassifier``: ``'tensor'``
    mode gives logits ``[B, C]``)."""
    logits = []
    for data, _ in _batches(model, images, batch_size):
        out = model(data['inputs'], data.get('data_samples'), mode='tensor')
        if not isinstance(out, Tensor) or out.dim() != 2:
            raise TypeError(f'{type(model).__name__} is not a classifier: its tensor mode gives '
                            f'{type(out).__name__} {tuple(getattr(out, "shape", ()))}, expected '
                            'logits [B, C] (use extract_features or mim_predict)')
        logits.append(out.float().cpu())
    probs = F.softmax(torch.cat(logits), dim=1)
    if not 1 <= topk <= probs.shape[1]:
        raise ValueError(f'topk={topk} must be between 1 and the number of classes '
                         f'{probs.shape[1]}')
    scores, labels = probs.topk(topk, dim=1)
    names = _class_names(model)
    if names is not None and len(names) != probs.shape[1]:
        names = None  # a class list of another length names nothing reliably
    class_names = None if names is None else [[names[i] for i in row] for row in labels.tolist()]
    return Classification(labels, scores, class_names)


# ---------------------------------------------------------------------------- MIM
class MIMPrediction(NamedTuple):
    """Masked image modeling outputs; ``M`` masked patches in all, batch-major then row-major
    (the order of ``logits_all[mask.flatten(1)]``)."""

    mask: Tensor                   # [N, h, w] bool, True = masked
    logits: Tensor                 # [M, V] head logits at the masked patches
    pred_tokens: Tensor            # [M] int64, argmax of logits
    target_tokens: Tensor          # [M] int64, the tokens the target generator gives them


def _as_masks(mask: Any, count: int, grid: Tuple[int, int]) -> Tensor:
    mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, Tensor) else mask).bool()
    if tuple(mask.shape) == tuple(grid):
        mask = mask.expand(count, *grid)
    if tuple(mask.shape) != (count, *grid):
        raise ValueError(f'mask of shape {tuple(mask.shape)}: expected [{count}, {grid[0]}, '
                         f'{grid[1]}] (one per image) or [{grid[0]}, {grid[1]}] (for all)')
    return mask


@torch.no_grad()
def mim_predict(model: nn.Module, images: Sequence[ImageLike], mask: Any = None,
                batch_size: int = 32) -> MIMPrediction:
    """Predict the visual tokens of the masked patches with a BEiT-style model.

    Args:
        model: a ``BEiT`` / ``BEiTv2`` from :func:`init_model` (``'tensor'`` mode gives the
            logits of every patch ``[B, N, V]`` for the masked input).
        mask: ``[N, h, w]`` or ``[h, w]`` bool (True = masked, the patch grid); None draws one
            per image with the config's mask generator (numpy's global random state, as in
            the data pipeline: seed it for repeatable masks).
    """
    from beitlab.models.algorithms.beit import BEiT

    if not isinstance(model, BEiT):
        raise TypeError(f'mim_predict needs a BEiT-style model (BEiT, BEiTv2) that predicts '
                        f'visual tokens, got {type(model).__name__}')
    images = [images] if isinstance(images, (str, os.PathLike, np.ndarray)) else list(images)
    masks = None
    masks_out, logits_out, pred_out, target_out = [], [], [], []
    done = 0
    for data, _ in _batches(model, images, batch_size):
        img_vit, img_tok = data['inputs']
        samples = data['data_samples']
        grid = (img_vit.shape[-2] // model.backbone.patch_size,
                img_vit.shape[-1] // model.backbone.patch_size)
        if mask is not None:
            if masks is None:
                masks = _as_masks(mask, len(images), grid)
            for i, sample in enumerate(samples):
                sample.mask = masks[done + i].clone()
        batch_masks = torch.stack([torch.as_tensor(s.mask) for s in samples]).bool()
        logits = model(data['inputs'], samples, mode='tensor')          # [B, N, V]
        flat = batch_masks.flatten(1).to(logits.device)
        logits_out.append(logits[flat].float().cpu())
        pred_out.append(logits[flat].argmax(-1).cpu())
        target = model.target_generator(img_tok, patch_grid=grid)      # [B, N]
        target_out.append(target.reshape(flat.shape)[flat].cpu())
        masks_out.append(batch_masks.cpu())
        done += len(samples)
    return MIMPrediction(torch.cat(masks_out), torch.cat(logits_out), torch.cat(pred_out),
                         torch.cat(target_out))
