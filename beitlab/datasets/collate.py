"""Collate functions for the dataloader (``collate_fn=dict(type='mim_collate')``)."""
from typing import Any, Sequence

import torch
from mmengine.dataset import default_collate

from beitlab.registry import FUNCTIONS

__all__ = ['mim_collate']


@FUNCTIONS.register_module()
def mim_collate(data_batch: Sequence[Any]) -> Any:
    """mmengine's ``default_collate`` (inputs stacked, data samples kept as a list), with the
    samples' masks stacked into one ``[B, H/P, W/P]`` tensor whose rows the samples keep.

    Values, shapes and types are those of ``default_collate``: each ``data_samples[i].mask``
    is still its ``[H/P, W/P]`` bool tensor, now a view of row i. A batch leaves a dataloader
    worker through shared memory one storage at a time, so B separate mask tensors cost B
    shared-memory segments (and file descriptors) per batch; one stacked tensor costs one.
    For 64 Fashion-MNIST samples (``PackTwoViewInputs``, 8 x 8 masks) that halves the worker's
    time per batch (``docs/performance.md``, "Fast path"). Samples without a mask, or with
    masks of different shapes, are left as ``default_collate`` leaves them.
    """
    batch = default_collate(data_batch)
    samples = batch.get('data_samples') if isinstance(batch, dict) else None
    if not samples or not isinstance(samples, list):
        return batch
    masks = [getattr(s, 'mask', None) for s in samples]
    if not all(isinstance(m, torch.Tensor) for m in masks) or len({m.shape for m in masks}) != 1:
        return batch
    for sample, row in zip(samples, torch.stack(masks)):
        sample.mask = row
    return batch
