"""Build a frozen network (teacher, perceptual network) from a config and a checkpoint.

Used by VQ-KD (BEiT v2's teacher) and PeCo's perceptual loss: both need "any
registered backbone, loaded from a beitlab checkpoint, never trained".
"""
from typing import Optional, Sequence, Union

from torch import nn

from beitlab.registry import MODELS
from beitlab.utils.strict_load import load_checkpoint_strict

__all__ = ['build_frozen_network']


def build_frozen_network(cfg: Union[dict, nn.Module],
                         checkpoint: Optional[str] = None,
                         prefix: str = 'backbone.',
                         role: str = 'frozen network',
                         hints: Sequence[str] = ()) -> nn.Module:
    """Build ``cfg`` from MODELS (or take a built module), load the ``prefix``-ed keys of
    ``checkpoint`` strictly (:func:`~beitlab.utils.strict_load.load_checkpoint_strict`; the
    error names the ``role`` and adds ``hints``) and freeze it.

    ``checkpoint`` is read like every other checkpoint (``.pth`` or ``.safetensors``, the
    one unwrap rule of :mod:`beitlab.checkpoint.unwrap`): a beitlab file, or an official
    BEiT ``{'model': ...}`` file (its bare names are converted to ``backbone.*`` first).

    The returned module has ``requires_grad=False`` everywhere and is in eval mode;
    its owner keeps it there by overriding ``train()`` (see ``PerceptualLoss``).
    """
    net = MODELS.build(cfg) if isinstance(cfg, dict) else cfg
    if checkpoint is not None:
        load_checkpoint_strict(
            net, checkpoint, prefix, extra_hints=hints,
            target=f'the {role} ({type(net).__name__}, keys under {prefix!r})')
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
