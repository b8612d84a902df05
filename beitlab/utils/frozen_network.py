"""Build a frozen network (teacher, perceptual network) from a config and a checkpoint.

Used by VQ-KD (BEiT v2's teacher) and PeCo's perceptual loss: both need "any
registered backbone, loaded from a beitlab checkpoint, never trained".
"""
from typing import Optional, Union

import torch
from torch import nn

from beitlab.registry import MODELS
from beitlab.utils.checkpoint import MMENGINE_SAFE_GLOBALS, safe_torch_load

__all__ = ['build_frozen_network', 'load_prefixed_state_dict']

def load_prefixed_state_dict(module: nn.Module, checkpoint: str, prefix: str = 'backbone.') -> None:
    """Load the ``prefix``-ed keys of ``checkpoint`` (prefix stripped) into ``module``, strictly.

    Accepts a bare state dict or an mmengine checkpoint (``{'state_dict': ...}``).
    ``prefix=''`` takes every key.

    Raises:
        KeyError: no key of the checkpoint starts with ``prefix``.
        RuntimeError: missing or unexpected keys (the message lists them).
    """
    # mmengine training checkpoints carry a few logging types: allow exactly those
    with torch.serialization.safe_globals(MMENGINE_SAFE_GLOBALS):
        ckpt = safe_torch_load(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not sub:
        raise KeyError(f'checkpoint {checkpoint!r} has no key starting with {prefix!r}; '
                       f'first keys: {list(state)[:5]}')
    missing, unexpected = module.load_state_dict(sub, strict=False)
    if missing or unexpected:
        raise RuntimeError(f'loading {checkpoint!r} (prefix {prefix!r}) into '
                           f'{type(module).__name__}: missing keys {missing}, '
                           f'unexpected keys {unexpected}')


def build_frozen_network(cfg: Union[dict, nn.Module],
                         checkpoint: Optional[str] = None,
                         prefix: str = 'backbone.') -> nn.Module:
    """Build ``cfg`` from MODELS (or take a built module), load ``checkpoint`` and freeze it.

    The returned module has ``requires_grad=False`` everywhere and is in eval mode;
    its owner keeps it there by overriding ``train()`` (see ``PerceptualLoss``).
    """
    net = MODELS.build(cfg) if isinstance(cfg, dict) else cfg
    if checkpoint is not None:
        load_prefixed_state_dict(net, checkpoint, prefix)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class FrozenNetworkMixin:
    """Hold frozen networks outside the module tree, so they are neither parameters
    (optimizers, DDP) nor state-dict entries (a checkpoint of the owner does not carry
    the teacher it was trained against), yet follow ``.to()`` / ``.cuda()`` / ``.half()``.

    Use as the first base of an ``nn.Module`` and call ``self.set_frozen(name, net)``.
    """

    def set_frozen(self, name: str, net: Optional[nn.Module]) -> None:
        frozen = self.__dict__.setdefault('_frozen_networks', {})
        frozen[name] = net
        object.__setattr__(self, name, net)

    def _apply(self, fn, *args, **kwargs):  # noqa: ANN001 (torch's private signature)
        result = super()._apply(fn, *args, **kwargs)
        for net in self.__dict__.get('_frozen_networks', {}).values():
            if net is not None:
                net._apply(fn)
        return result
