"""Watch pre-training with a k-NN classifier on frozen features (no labels in training).

Every ``interval`` iterations (and after the last one) the hook extracts features of a
labelled subset of a training split (the memory bank) and of a validation split with the
backbone as it is, and logs the top-1 accuracy of the cosine-similarity weighted k-NN
classifier of Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance
Discrimination" (CVPR 2018, Sec. 3.4), as DINO evaluates it (Caron et al. 2021,
``eval_knn.py`` of ``facebookresearch/dino``): the k most similar bank features vote for
their class with weight ``exp(sim / T)`` (k = 20, T = 0.07).

The evaluation changes nothing the training sees: it runs under ``torch.no_grad`` with
every module in eval mode (each module's own training flag is restored after), the torch,
numpy and Python random states are saved and restored, its data loaders have their own
seeded generator, and the backbone's ``out_indices`` / ``out_type`` (set for one forward by
:func:`beitlab.apis.features.layer_tokens`) are restored. Under DDP each rank extracts a
contiguous shard of both sets and the features are all-gathered, so every rank computes
the same numbers.
"""
import contextlib
import copy
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from mmengine.model import ImgDataPreprocessor, is_model_wrapper
from mmengine.registry import DefaultScope
from torch import Tensor, nn

from beitlab.apis.features import layer_features, normalize_layers
from beitlab.registry import DATASETS, HOOKS, MODELS
from beitlab.utils.random_state import preserved_random_state

__all__ = ['KNNMonitorHook', 'knn_top1', 'knn_predict', 'preserved_training_state',
           'FASHION_MNIST_PIPELINE']

# Fashion-MNIST as the pre-training configs read it: 28 px items zero-padded to 32 px.
FASHION_MNIST_PIPELINE = [
    dict(type='LoadImageChecked'),
    dict(type='mmcv.Pad', size=(32, 32), pad_val=0),
    dict(type='PackImageInputs'),
]
_LOADER_KEYS = {'batch_size', 'num_workers', 'dataset'}


def knn_predict(train_feats: Tensor, train_labels: Tensor, query_feats: Tensor, k: int = 20,
                temperature: float = 0.07, num_classes: Optional[int] = None,
                chunk_size: int = 1024) -> Tensor:
    """Weighted k-NN class of each query (Wu et al. 2018, Sec. 3.4; DINO's ``knn_classifier``).

    Features are L2-normalised; the ``k`` bank entries of highest cosine similarity ``s``
    each add ``exp(s / temperature)`` to the score of their class; the class of highest
    score wins (the lowest label on a tie).

    Args:
        train_feats: ``[N, D]`` bank features; train_labels: ``[N]`` int64.
        query_feats: ``[Q, D]``.
        k: neighbours (at most N are used).
        num_classes: C (default: the largest bank label + 1).
    Returns:
        ``[Q]`` int64 predicted labels.
    """
    if train_feats.dim() != 2 or query_feats.dim() != 2 or \
            train_feats.shape[1] != query_feats.shape[1]:
        raise ValueError(f'features must be [N, D] and [Q, D] with the same D, got '
                         f'{tuple(train_feats.shape)} and {tuple(query_feats.shape)}')
    if train_labels.shape != train_feats.shape[:1]:
        raise ValueError(f'train_labels {tuple(train_labels.shape)} do not match the '
                         f'{train_feats.shape[0]} bank features')
    if k < 1 or temperature <= 0:
        raise ValueError(f'k={k} must be >= 1 and temperature={temperature} > 0')
    bank = F.normalize(train_feats.float(), dim=1)
    queries = F.normalize(query_feats.float(), dim=1)
    labels = train_labels.long().to(bank.device)
    classes = int(num_classes) if num_classes is not None else int(labels.max()) + 1
    k = min(int(k), bank.shape[0])
    preds = []
    for start in range(0, queries.shape[0], chunk_size):
        sim = queries[start:start + chunk_size] @ bank.T                   # [q, N]
        top_sim, top_idx = sim.topk(k, dim=1)                              # [q, k]
        votes = torch.zeros(sim.shape[0], classes, device=sim.device)
        votes.scatter_add_(1, labels[top_idx], (top_sim / temperature).exp())
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def knn_top1(train_feats: Tensor, train_labels: Tensor, val_feats: Tensor, val_labels: Tensor,
             k: int = 20, temperature: float = 0.07, num_classes: Optional[int] = None) -> float:
    """Top-1 accuracy of :func:`knn_predict` on ``(val_feats, val_labels)``."""
    if val_labels.shape != val_feats.shape[:1]:
        raise ValueError(f'val_labels {tuple(val_labels.shape)} do not match the '
                         f'{val_feats.shape[0]} val features')
    if num_classes is None:
        num_classes = int(max(int(train_labels.max()), int(val_labels.max()))) + 1
    pred = knn_predict(train_feats, train_labels, val_feats, k, temperature, num_classes)
    return float((pred.cpu() == val_labels.long().cpu()).float().mean())


@contextlib.contextmanager
def preserved_training_state(model: nn.Module) -> Iterator[None]:
    """Run a block in eval mode under ``no_grad``, then put back every module's training
    flag and the torch (CPU and CUDA), numpy and Python random states."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with preserved_random_state(), torch.no_grad():
            yield
    finally:
        for module, mode in modes:
            module.training = mode


class _LabelledSet:
    """A fixed subset of a labelled dataset, read through its own data loader."""

    def __init__(self, name: str, loader_cfg: dict, num: Optional[int], seed: int) -> None:
        unknown = set(loader_cfg) - _LOADER_KEYS
        if unknown:
            raise KeyError(f'KNNMonitorHook {name}_dataloader: unknown keys {sorted(unknown)}; '
                           f'it takes {sorted(_LOADER_KEYS)} (the order is fixed, no sampler)')
        if 'dataset' not in loader_cfg:
            raise KeyError(f'KNNMonitorHook {name}_dataloader needs a `dataset` config')
        self.name = name
        self.batch_size = int(loader_cfg.get('batch_size', 256))
        self.num_workers = int(loader_cfg.get('num_workers', 0))
        ds_cfg = copy.deepcopy(loader_cfg['dataset'])
        self.dataset = DATASETS.build(ds_cfg) if isinstance(ds_cfg, dict) else ds_cfg
        total = len(self.dataset)
        if num is None or num >= total:
            self.indices = np.arange(total)
        else:
            # a fixed random subset (its own generator: the global state is not touched)
            self.indices = np.sort(np.random.default_rng(seed).permutation(total)[:int(num)])
        if len(self.indices) == 0:
            raise ValueError(f'KNNMonitorHook: the {name} set is empty ({ds_cfg})')
        self.seed = seed
        self.cache: Optional[List[Tuple[Tensor, Tensor]]] = None

    def shard(self) -> np.ndarray:
        rank, world = get_dist_info()
        return np.array_split(self.indices, world)[rank]

    def batches(self, cache: bool) -> List[Tuple[Tensor, Tensor]]:
        """``[(inputs [B, C, H, W] uint8, labels [B] int64), ...]`` of this rank's shard."""
        if self.cache is not None:
            return self.cache
        subset = torch.utils.data.Subset(self.dataset, self.shard().tolist())
        loader = torch.utils.data.DataLoader(
            subset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
            collate_fn=pseudo_collate, generator=torch.Generator().manual_seed(self.seed))
        out = []
        for batch in loader:
            labels = []
            for sample in batch['data_samples']:
                if 'gt_label' not in sample:
                    raise KeyError(f'KNNMonitorHook: the {self.name} set is not labelled (no '
                                   'gt_label in its data samples); give a labelled dataset')
                labels.append(torch.as_tensor(sample.gt_label).reshape(-1)[:1])
            out.append((torch.stack(list(batch['inputs'])), torch.cat(labels).long()))
        if cache:
            self.cache = out
        return out


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Log the weighted k-NN top-1 of frozen backbone features during pre-training.

    Logs, at step ``iteration`` of the json log (``<work_dir>/<timestamp>/vis_data/``) and
    of every visualiser backend (TensorBoard included), ``knn/top1_layer{n}`` per layer
    (n 1-based: the last of 6 layers is ``layer6``; ``_mean`` appended for mean-pooled
    patches) and ``knn/time_s``, the seconds the evaluation took; a text line too.

    Args:
        interval: evaluate every this many iterations, and after the last one.
        layers: backbone layers (0-based, negatives from the end, as ``out_indices``).
        pooling: ``'cls'`` (the CLS token) or ``'mean'`` (mean of the patch tokens), or a
            list of both.
        k, temperature: the k-NN classifier (20 and 0.07: InstDisc / DINO).
        num_train, num_val: sizes of the fixed random subsets (None: the whole split).
        train_dataloader, val_dataloader: ``dict(batch_size, num_workers, dataset)`` of
            labelled datasets whose pipelines end in ``PackImageInputs``; default: the
            Fashion-MNIST train and val splits under ``data_root`` in the layout of
            ``tools/dataset_converters/fashion_mnist.py``, padded to 32 px.
        data_root: root of the default datasets.
        data_preprocessor: a MODELS config (e.g. ``ClsDataPreprocessor`` with mean / std);
            default: the model's own when it takes one view, else a ``ClsDataPreprocessor``
            with the mean, std and ``to_rgb`` of the model's (two-view) preprocessor.
        seed: subset choice and the loaders' generator.
        at_start: also evaluate before the first iteration (the curve's step 0).
        cache_inputs: keep the decoded uint8 images in memory after the first evaluation
            (2,000 + 1,000 Fashion-MNIST images: 9 MB).
    """

    priority = 'LOW'

    def __init__(self, interval: int = 200, layers: Union[int, Sequence[int]] = (-1, ),
                 pooling: Union[str, Sequence[str]] = 'cls', k: int = 20,
                 temperature: float = 0.07, num_train: Optional[int] = 2000,
                 num_val: Optional[int] = 1000, train_dataloader: Optional[dict] = None,
                 val_dataloader: Optional[dict] = None, data_root: str = 'data/fashion_mnist',
                 data_preprocessor: Optional[dict] = None, seed: int = 0,
                 at_start: bool = False, cache_inputs: bool = True) -> None:
        if interval < 1:
            raise ValueError(f'KNNMonitorHook: interval={interval} must be >= 1')
        if k < 1 or temperature <= 0:
            raise ValueError(f'KNNMonitorHook: k={k} must be >= 1 and temperature={temperature} > 0')
        poolings = [pooling] if isinstance(pooling, str) else list(pooling)
        for p in poolings:
            if p not in ('cls', 'mean'):
                raise ValueError(f"KNNMonitorHook: pooling {p!r} is not 'cls' or 'mean'")
        self.interval = int(interval)
        self.layers = [layers] if isinstance(layers, int) else list(layers)
        self.poolings = poolings
        self.k = int(k)
        self.temperature = float(temperature)
        self.num_train, self.num_val = num_train, num_val
        self.train_loader_cfg = train_dataloader or self._fashion_mnist(data_root, 'train')
        self.val_loader_cfg = val_dataloader or self._fashion_mnist(data_root, 'val')
        self.data_preprocessor_cfg = data_preprocessor
        self.seed = int(seed)
        self.at_start = bool(at_start)
        self.cache_inputs = bool(cache_inputs)
        self.history: List[Dict[str, float]] = []
        self._sets: Optional[Tuple[_LabelledSet, _LabelledSet]] = None
        self._preprocessor: Optional[nn.Module] = None
        self._indices: List[int] = []

    @staticmethod
    def _fashion_mnist(data_root: str, split: str) -> dict:
        return dict(batch_size=256, num_workers=0, dataset=dict(
            type='ImageNetStyleDataset', data_root=data_root, ann_file=f'meta/{split}.txt',
            data_prefix=dict(img_path=split), pipeline=copy.deepcopy(FASHION_MNIST_PIPELINE),
            test_mode=True))

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _model(runner) -> nn.Module:
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def _build_preprocessor(self, model: nn.Module) -> nn.Module:
        if self.data_preprocessor_cfg is not None:
            return MODELS.build(copy.deepcopy(self.data_preprocessor_cfg))
        own = getattr(model, 'data_preprocessor', None)
        if isinstance(own, ImgDataPreprocessor):
            return own
        if own is not None and all(hasattr(own, a) for a in ('mean', 'std', 'to_rgb')):
            return MODELS.build(dict(type='ClsDataPreprocessor',
                                     mean=own.mean.flatten().tolist(),
                                     std=own.std.flatten().tolist(), to_rgb=bool(own.to_rgb)))
        raise ValueError(f'KNNMonitorHook: cannot derive the normalisation from the model\'s '
                         f'{type(own).__name__}; give data_preprocessor=dict('
                         f"type='ClsDataPreprocessor', mean=..., std=..., to_rgb=True)")

    def before_train(self, runner) -> None:
        model = self._model(runner)
        backbone = getattr(model, 'backbone', None)
        if backbone is None or not hasattr(backbone, 'out_indices'):
            raise TypeError(f'KNNMonitorHook needs a model with a BEiTViT `backbone`, got '
                            f'{type(model).__name__}')
        self._indices = normalize_layers(backbone, self.layers)
        if 'cls' in self.poolings and not getattr(backbone, 'with_cls_token', True):
            raise ValueError("KNNMonitorHook: pooling='cls' needs a backbone with a CLS token")
        # Build the datasets now: a missing data folder fails before training, not later.
        scope = runner.cfg.get('default_scope', 'beitlab')
        with DefaultScope.overwrite_default_scope(scope):
            self._sets = (_LabelledSet('train', self.train_loader_cfg, self.num_train, self.seed),
                          _LabelledSet('val', self.val_loader_cfg, self.num_val, self.seed))
            self._preprocessor = self._build_preprocessor(model)
        if self.at_start and runner.iter == 0:
            self.evaluate(runner, step=0)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            self.evaluate(runner, step=runner.iter + 1)

    # ------------------------------------------------------------------ evaluation
    def _features(self, model: nn.Module, labelled: _LabelledSet
                  ) -> Tuple[Dict[Tuple[int, str], Tensor], Tensor]:
        device = next(model.parameters()).device
        prep = self._preprocessor.to(device)
        feats: Dict[Tuple[int, str], List[Tensor]] = {}
        labels = []
        unique = sorted(set(self._indices))
        for inputs, lab in labelled.batches(self.cache_inputs):
            x = prep(dict(inputs=list(inputs)), False)['inputs']
            for pooling in self.poolings:
                for index, f in zip(unique, layer_features(model.backbone, x, unique, pooling)):
                    # clone: a CLS feature is a view of the layer's tokens, which it would keep alive
                    feats.setdefault((index, pooling), []).append(f.float().cpu().clone())
            labels.append(lab)
        local = ({key: torch.cat(v) for key, v in feats.items()}, torch.cat(labels))
        if get_dist_info()[1] == 1:
            return local
        parts = all_gather_object(local)   # rank order = shard order
        merged = {key: torch.cat([p[0][key] for p in parts]) for key in local[0]}
        return merged, torch.cat([p[1] for p in parts])

    def evaluate(self, runner, step: int) -> Dict[str, float]:
        """Extract, classify, log; returns the logged values."""
        start = time.perf_counter()
        model = self._model(runner)
        train_set, val_set = self._sets
        with preserved_training_state(model):
            bank, bank_labels = self._features(model, train_set)
            val, val_labels = self._features(model, val_set)
        num_classes = int(max(int(bank_labels.max()), int(val_labels.max()))) + 1
        metrics: Dict[str, float] = {}
        for index in sorted(set(self._indices)):
            for pooling in self.poolings:
                key = f'knn/top1_layer{index + 1}' + ('' if pooling == 'cls' else f'_{pooling}')
                metrics[key] = knn_top1(bank[(index, pooling)], bank_labels, val[(index, pooling)],
                                        val_labels, self.k, self.temperature, num_classes)
        metrics['knn/time_s'] = time.perf_counter() - start
        self.history.append(dict(metrics, step=step))
        runner.visualizer.add_scalars(metrics, step=step, file_path=f'{runner.timestamp}.json')
        shown = '  '.join(f'{k[4:]} {v:.4f}' for k, v in metrics.items() if k != 'knn/time_s')
        runner.logger.info(f'k-NN (k={self.k}, T={self.temperature}, {len(bank_labels)} train / '
                           f'{len(val_labels)} val images) at iteration {step}: {shown} '
                           f'({metrics["knn/time_s"]:.1f} s)')
        return metrics
