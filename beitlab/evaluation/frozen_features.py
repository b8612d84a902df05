"""Frozen-feature evaluation of a backbone: its features on the Fashion-MNIST splits as the
Fashion-MNIST configs read them, and a linear probe on them (the weighted k-NN classifier is
:func:`beitlab.engine.hooks.knn_monitor_hook.knn_top1`). Used by
``tools/analysis_tools/frozen_features.py`` and ``tools/misc/zoo_check.py``."""
import copy
import logging
import math
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

__all__ = ['fashion_mnist_inputs', 'extract', 'linear_probe', 'build_backbone']


def fashion_mnist_inputs(root: Optional[str], split: str, mean: Sequence[float],
                         std: Sequence[float], num: Optional[int] = None):
    """``([N, 3, 32, 32] float32 normalised, [N] int64)`` of one split: the 28 px item at the
    top left of a zero 32 px image (``mmcv.Pad(size=(32, 32), pad_val=0)``), grey replicated
    to three channels, then ``(x - mean) / std`` per channel."""
    from beitlab.datasets.fashion_mnist_files import load_fashion_mnist
    images, labels = load_fashion_mnist(root, split)
    if num is not None:
        images, labels = images[:num], labels[:num]
    x = torch.zeros(len(images), 3, 32, 32)
    x[:, :, :28, :28] = torch.from_numpy(images.copy()).float()[:, None]
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s, torch.from_numpy(labels.copy()).long()


@torch.no_grad()
def extract(backbone: nn.Module, x: Tensor, layers: List[int], poolings: Sequence[str],
            batch_size: int) -> Dict[tuple, Tensor]:
    """``{(layer, pooling): [N, D]}`` of the frozen backbone (one forward per batch)."""
    from beitlab.apis.features import layer_tokens, pool_tokens
    extra = int(getattr(backbone, 'num_extra_tokens', 1))
    out: Dict[tuple, List[Tensor]] = {}
    for start in range(0, len(x), batch_size):
        tokens = layer_tokens(backbone, x[start:start + batch_size], layers)
        for layer, t in zip(layers, tokens):
            for pooling in poolings:
                # clone: a CLS feature is a view of the tokens, which it would keep alive
                out.setdefault((layer, pooling), []).append(pool_tokens(t, pooling, extra).float().clone())
    return {key: torch.cat(v) for key, v in out.items()}


def linear_probe(train: Tensor, train_labels: Tensor, test: Tensor, test_labels: Tensor,
                 epochs: int, seed: int, batch_size: int = 512) -> float:
    """Test top-1 of a linear classifier trained on standardised frozen features."""
    mu, sigma = train.mean(0, keepdim=True), train.std(0, keepdim=True).clamp_min(1e-6)
    train, test = (train - mu) / sigma, (test - mu) / sigma
    gen = torch.Generator().manual_seed(seed)
    classes = int(max(int(train_labels.max()), int(test_labels.max()))) + 1
    head = nn.Linear(train.shape[1], classes)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        nn.init.trunc_normal_(head.weight, std=0.01)
        nn.init.zeros_(head.bias)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total = max(1, epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / total)))
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=gen)
        for start in range(0, len(train), batch_size):
            idx = order[start:start + batch_size]
            loss = loss_fn(head(train[idx]), train_labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return float((head(test).argmax(1) == test_labels).float().mean())


def build_backbone(cfg, checkpoint: str, seed: int) -> nn.Module:
    """The config's backbone with the checkpoint loaded strictly (or random init)."""
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope

    from beitlab.checkpoint.pretrained import load_pretrained_backbone
    from beitlab.registry import MODELS
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'beitlab')):
        backbone = MODELS.build(copy.deepcopy(cfg.model.backbone))
    if checkpoint.lower() != 'none':
        load_pretrained_backbone(backbone, checkpoint, logger=None)  # strict: every tensor
    elif hasattr(backbone, 'init_weights'):
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)   # init_weights logs one line per tensor
        try:
            backbone.init_weights()
        finally:
            logger.setLevel(level)
    return backbone.eval()
