"""Perceptual loss of PeCo.

Dong et al., "PeCo: Perceptual Codebook for BERT Pre-training of Vision
Transformers" (AAAI 2023), Sec. 3.2, Eq. 3: the tokenizer is trained with an extra
term ``sum_l ||phi_l(x) - phi_l(x_hat)||^2 / (C_l H_l W_l)`` on the features of a
frozen network at several layers, so that images with the same tokens look alike
to a network rather than pixel by pixel. The paper uses VGG / a self-supervised
ResNet; here the network is any registered backbone loaded from a checkpoint
(nothing can be downloaded). The network is not a submodule: it never trains,
never enters the optimizer and is not saved with the tokenizer.
"""
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beitlab.registry import MODELS
from beitlab.utils.frozen_network import FrozenNetworkMixin, build_frozen_network

__all__ = ['PerceptualLoss']


@MODELS.register_module()
class PerceptualLoss(FrozenNetworkMixin, nn.Module):
    """Feature distance of a frozen network between a reconstruction and its target.

    Args:
        network: config (or module) of a MODELS backbone whose ``forward(x)``
            returns a tuple of features, one per layer used (e.g. ``BEiTViT`` with
            ``out_indices=(1, 3, 5)`` and ``out_type='featmap'``); ``type`` defaults to
            ``BEiTViT``.
        checkpoint: file to load the network from, strictly (a missing, unexpected or
            differently shaped tensor raises ``StrictLoadError`` with one table); None keeps
            its initialisation, only sensible in tests.
        prefix: key prefix of the network in ``checkpoint`` (``'backbone.'`` for a
            beitlab pre-training or fine-tuning checkpoint).
        layer_weights: one weight per returned feature (default all 1).
        normalize_features: l2-normalise every feature vector over channels
            first (as LPIPS does), so layers of different scale weigh alike.
        loss_weight: factor on the summed loss.
        input_mean, input_std: affine map from the caller's image range to the
            normalisation the network was trained with, applied as
            ``(x - mean) / std`` per channel (defaults leave x unchanged).
    """

    def __init__(self,
                 network: Union[dict, nn.Module],
                 checkpoint: Optional[str] = None,
                 prefix: str = 'backbone.',
                 layer_weights: Optional[Sequence[float]] = None,
                 normalize_features: bool = True,
                 loss_weight: float = 1.0,
                 input_mean: Sequence[float] = (0., 0., 0.),
                 input_std: Sequence[float] = (1., 1., 1.)) -> None:
        super().__init__()
        # held outside the module tree: no parameters, no state-dict entries
        if isinstance(network, dict):
            network = dict(dict(type='BEiTViT'), **network)
        net = build_frozen_network(
            network, checkpoint, prefix, role='perceptual network',
            hints=['the network config must build what the checkpoint holds under prefix '
                   '(same arch, img_size, patch_size and flags)'])
        self.set_frozen('network', net)
        self.layer_weights = None if layer_weights is None else list(layer_weights)
        self.normalize_features = normalize_features
        self.loss_weight = loss_weight
        self.register_buffer('input_mean', torch.tensor(input_mean).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer('input_std', torch.tensor(input_std).view(1, -1, 1, 1),
                             persistent=False)

    def _features(self, x: Tensor) -> tuple:
        feats = self.network((x - self.input_mean) / self.input_std)
        if isinstance(feats, Tensor):
            feats = (feats, )
        return tuple(feats)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """pred, target: [B, C, H, W] images -> scalar loss (gradient flows into ``pred`` only)."""
        if pred.shape != target.shape:
            raise ValueError(f'PerceptualLoss: pred {tuple(pred.shape)} and target '
                             f'{tuple(target.shape)} differ')
        f_pred = self._features(pred)
        f_tgt = self._features(target.detach())
        weights = self.layer_weights or [1.0] * len(f_pred)
        if len(weights) != len(f_pred):
            raise ValueError(f'PerceptualLoss: {len(weights)} layer_weights for '
                             f'{len(f_pred)} network outputs')
        loss = pred.new_zeros(())
        for w, a, b in zip(weights, f_pred, f_tgt):
            b = b.detach()
            if self.normalize_features:
                # channel dim is 1 for feature maps [B, C, H, W], last for tokens [B, N, C]
                dim = 1 if a.dim() == 4 else -1
                a, b = F.normalize(a, dim=dim), F.normalize(b, dim=dim)
            loss = loss + w * F.mse_loss(a, b)  # mean over C*H*W (and B): Eq. 3
        return self.loss_weight * loss
