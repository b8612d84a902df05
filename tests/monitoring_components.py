"""Test parts for the monitoring hooks (loaded through ``custom_imports``): a labelled
Fashion-MNIST dataset read from the idx files of ``tests/data/fashion_mnist``, a transform
that draws from every random generator, and a toy regressor whose loss is NaN on chosen calls."""
import random
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset

from beitlab.datasets.fashion_mnist_files import FASHION_MNIST_CLASSES, load_fashion_mnist
from beitlab.registry import DATASETS, MODELS, TRANSFORMS
from tests.tools_helpers import FASHION_MNIST_SUBSET
from tests.toy_components import ToyRegressor


@DATASETS.register_module()
class FashionMNISTIdxDataset(BaseDataset):
    """The first ``num`` items of a split of the shipped subset: ``img`` [28, 28, 3] uint8
    (gray replicated, as the colour loading of a PNG) and ``gt_label``."""

    METAINFO = dict(classes=FASHION_MNIST_CLASSES)

    def __init__(self, split: str = 'train', num: int = 0, **kwargs) -> None:
        self.split, self.num = split, num
        super().__init__(serialize_data=False, lazy_init=False, **kwargs)

    def load_data_list(self) -> list:
        images, labels = load_fashion_mnist(str(FASHION_MNIST_SUBSET), self.split)
        if self.num:
            images, labels = images[:self.num], labels[:self.num]
        return [dict(img=np.repeat(img[..., None], 3, axis=2), gt_label=int(label),
                     img_shape=img.shape, ori_shape=img.shape)
                for img, label in zip(images, labels)]


@TRANSFORMS.register_module()
class ConsumeRandomness(BaseTransform):
    """Draw from Python's, numpy's and torch's global generators; change nothing."""

    def transform(self, results: dict) -> dict:
        random.random()
        np.random.rand()
        torch.rand(1)
        return results


@MODELS.register_module()
class NaNLossToyRegressor(ToyRegressor):
    """``ToyRegressor`` whose loss (and so every gradient) is NaN on the ``nan_calls``-th
    calls in loss mode (0-based; in a run without rollback the call number is the iteration)."""

    def __init__(self, nan_calls: Sequence[int] = ()) -> None:
        super().__init__()
        self.nan_calls = set(int(c) for c in nan_calls)
        self.calls = 0

    def forward(self, inputs, targets, mode: str = 'tensor', **meta):
        out = super().forward(inputs, targets, mode, **meta)
        if mode == 'loss':
            if self.calls in self.nan_calls:
                out = {'loss': out['loss'] * float('nan')}
            self.calls += 1
        return out


def knn_features_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """One rank of a gloo group: KNNMonitorHook's (sharded, all-gathered) features of 37
    Fashion-MNIST items, saved to ``out_dir/rank<rank>.pt``."""
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        torch.save(knn_features(), os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def knn_features():
    """``(features by (layer, pooling), labels)`` of KNNMonitorHook for 37 items of a seeded
    tiny backbone, through the hook's own extraction."""
    from mmengine.registry import DefaultScope
    from torch import nn

    from beitlab.engine.hooks.knn_monitor_hook import KNNMonitorHook, _LabelledSet
    from beitlab.utils import register_all_modules

    register_all_modules()
    torch.manual_seed(0)
    model = nn.Module()
    model.backbone = MODELS.build(dict(
        type='BEiTViT', arch=dict(embed_dims=64, num_layers=2, num_heads=2,
                                  feedforward_channels=128),
        img_size=32, patch_size=4, out_type='raw', layer_scale_init_value=0.1)).eval()
    pipeline = [dict(type='mmcv.Pad', size=(32, 32), pad_val=0), dict(type='PackImageInputs')]
    loader = dict(batch_size=8, dataset=dict(type='FashionMNISTIdxDataset', split='train',
                                             num=50, pipeline=pipeline))
    hook = KNNMonitorHook(layers=(0, -1), pooling=['cls', 'mean'], train_dataloader=loader,
                          val_dataloader=loader)
    with DefaultScope.overwrite_default_scope('beitlab'):
        hook._indices = [0, 1]
        hook._preprocessor = MODELS.build(dict(type='ClsDataPreprocessor', mean=[72.94] * 3,
                                               std=[90.02] * 3))
        labelled = _LabelledSet('train', loader, 37, seed=0)
        with torch.no_grad():
            return hook._features(model, labelled)
