"""Shared plumbing of the pixel/feature-regression MIM algorithms (MAE, SimMIM, MaskFeat).

Not registered: it only turns ``forward(inputs, data_samples, mode)`` into
``loss(img, mask)`` and builds the parts (each a config dict or a built module).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel
from torch import Tensor, nn

from beitlab.registry import MODELS, TARGET_GENERATORS

__all__ = ['MIMRegressionBase', 'build_part', 'stack_masks']


def build_part(cfg: Union[dict, nn.Module, None], registry) -> Optional[nn.Module]:
    """A part given as a config dict is built from ``registry``; a module is taken as is."""
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    return registry.build(cfg)


def stack_masks(data_samples: Optional[Sequence], device: torch.device) -> Optional[Tensor]:
    """``data_samples[i].mask`` ([H/P, W/P] bool, numpy or tensor) -> ``[B, H/P, W/P]`` bool."""
    if not data_samples or not all(hasattr(s, 'mask') for s in data_samples):
        return None
    return torch.stack([torch.as_tensor(s.mask) for s in data_samples]).to(device).bool()


class MIMRegressionBase(BaseModel):
    """Base of MIM algorithms that regress a per-patch target.

    Args:
        backbone: BEiTViT config or module (attribute ``backbone``, so parameter names
            are ``backbone.<official name>``).
        head: MODELS head config or module.
        target_generator: TARGET_GENERATORS config or module (frozen).
        data_preprocessor: mmengine data preprocessor config.
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 backbone: Union[dict, nn.Module],
                 head: Union[dict, nn.Module],
                 target_generator: Union[dict, nn.Module],
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = build_part(backbone, MODELS)
        self.head = build_part(head, MODELS)
        self.target_generator = build_part(target_generator, TARGET_GENERATORS)
        for p in self.target_generator.parameters():
            p.requires_grad_(False)

    @staticmethod
    def image_view(inputs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """The ViT view: ``inputs`` itself or ``inputs[0]`` of a two-view batch."""
        if isinstance(inputs, (list, tuple)):
            return inputs[0]
        return inputs

    def extract_feat(self, inputs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """Tokens ``[B, 1+N, D]`` of the unmasked image (for feature extraction)."""
        return self.backbone.forward_features(self.image_view(inputs))

    def loss(self, img: Tensor, mask: Optional[Tensor]) -> Dict[str, Tensor]:
        raise NotImplementedError

    def forward(self,
                inputs: Union[Tensor, List[Tensor]],
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        img = self.image_view(inputs)
        if mode == 'loss':
            return self.loss(img, stack_masks(data_samples, img.device))
        if mode == 'tensor':
            return self.extract_feat(img)
        raise RuntimeError(f'{type(self).__name__}.forward: mode={mode!r} is not supported '
                           "(expected 'loss' or 'tensor'; pre-training has no 'predict')")
