"""Pack a loaded image into the ``inputs`` / ``data_samples`` pair mmengine models take."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from beitlab.registry import TRANSFORMS

__all__ = ['PackImageInputs']


@TRANSFORMS.register_module()
class PackImageInputs(BaseTransform):
    """``results['img']`` [H, W, C] uint8 -> ``inputs`` [C, H, W] uint8 tensor.

    ``data_samples`` is a ``BaseDataElement`` carrying ``gt_label`` ([1] int64 tensor, when
    the dataset is labelled) and the keys in ``meta_keys`` as metainfo.

    Args:
        meta_keys: result keys copied into the data sample's metainfo when present.
    """

    def __init__(self, meta_keys: Sequence[str] = ('img_path', 'ori_shape', 'img_shape')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = BaseDataElement(
            metainfo={k: results[k] for k in self.meta_keys if k in results})
        if 'gt_label' in results:
            sample.gt_label = torch.as_tensor(results['gt_label'], dtype=torch.int64).reshape(-1)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
