"""mmengine's ``init_cfg=dict(type='Pretrained')`` made strict (every OpenMMLab config's way of
loading weights into a part of a model), reading files through the checkpoint package."""
import re
from collections import OrderedDict
from typing import Mapping, Optional

from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from torch import nn

from beitlab.utils.strict_load import Allowance, AllowHint, Patterns, load_state_dict_strict

__all__ = ['StrictPretrainedInit', 'install_strict_pretrained_init']


class StrictPretrainedInit(PretrainedInit):
    """mmengine's ``Pretrained`` initializer, strict: registered under the name
    ``'Pretrained'`` by :func:`install_strict_pretrained_init`.

    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=None)`` reads the file as
    mmengine does (its checkpoint loaders, so beitlab's safe local loader, ``.safetensors``
    included), takes the weights with the module's names
    (:func:`beitlab.checkpoint.model_state.read_model_state`: the one unwrap rule, an official
    ``{'model': ...}`` file or another registered layout converted to beitlab's names;
    ``prefix`` keeps the keys under it, stripped, otherwise a leading ``module.`` is
    stripped; ``meta['backbone']`` checked with ``prefix='backbone.'``) and loads them with
    :func:`load_state_dict_strict`. An official file loads into a backbone with
    ``prefix='backbone.'``.

    Args:
        checkpoint, prefix, map_location: as mmengine's ``PretrainedInit``.
        allow_missing, allow_unexpected, allow_shape_mismatch: key patterns (module names,
            after ``prefix`` is stripped) of differences that may pass, e.g.
            ``allow_unexpected=['fc.*']`` for a torchvision ImageNet classifier loaded into a
            detection backbone.
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None, map_location: str = 'cpu',
                 allow_missing: Optional[Patterns] = None,
                 allow_unexpected: Optional[Patterns] = None,
                 allow_shape_mismatch: Optional[Patterns] = None) -> None:
        super().__init__(checkpoint, prefix=prefix, map_location=map_location)
        self.allowance = Allowance.from_lists(allow_missing, allow_unexpected,
                                              allow_shape_mismatch, where='init_cfg allow')

    def __call__(self, module: nn.Module) -> None:
        from mmengine.runner.checkpoint import _load_checkpoint

        from .model_state import read_model_state
        print_log(f'load {self.prefix or "model"} from: {self.checkpoint} (strict)',
                  logger='current')
        checkpoint = _load_checkpoint(self.checkpoint, map_location=self.map_location)
        if not isinstance(checkpoint, Mapping):
            raise TypeError(f'init_cfg Pretrained: {self.checkpoint!r} holds no state dict '
                            f'(got {type(checkpoint).__name__})')
        prefix = self.prefix
        if prefix and not prefix.endswith('.'):
            prefix += '.'
        state = read_model_state(checkpoint, module, prefix or None,
                                 source=f'init_cfg Pretrained {self.checkpoint!r}').state
        if not prefix:
            state = OrderedDict((re.sub(r'^module\.', '', k), v) for k, v in state.items())
        a = self.allowance
        load_state_dict_strict(
            module, state, self.checkpoint, a.missing, a.unexpected, a.shape_mismatch,
            allow_hint=AllowHint("init_cfg=dict(type='Pretrained', checkpoint=..., {})",
                                 ('allow_missing', 'allow_unexpected', 'allow_shape_mismatch')))
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return f'{type(self).__name__}: load from {self.checkpoint}'


def install_strict_pretrained_init() -> None:
    """Bind ``'Pretrained'`` in mmengine's ``WEIGHT_INITIALIZERS`` to
    :class:`StrictPretrainedInit` (``force=True``; idempotent).

    Why the override rather than a new name: ``init_cfg=dict(type='Pretrained')`` is how
    every OpenMMLab config (beitlab's, mmseg's, mmdet's, and the ones users bring) loads
    weights into a part of a model; mmengine's initializer loads with ``strict=False`` and
    has no option to change it. mmseg and mmdet build initializers from child registries of
    mmengine's root ``WEIGHT_INITIALIZERS`` that do not define ``'Pretrained'`` themselves, so
    rebinding the root entry makes every such config strict in a beitlab process, and
    ``BaseModule.init_weights`` still recognises the name (it applies ``'Pretrained'`` after
    the children's own init). A new name would leave every existing config loose. Called by
    :func:`beitlab.utils.register_all_modules`, like the safe checkpoint loader.
    """
    from mmengine.registry import WEIGHT_INITIALIZERS
    if WEIGHT_INITIALIZERS.module_dict.get('Pretrained') is not StrictPretrainedInit:
        WEIGHT_INITIALIZERS.register_module(name='Pretrained', module=StrictPretrainedInit,
                                            force=True)
