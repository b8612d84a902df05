"""Layer-wise learning-rate decay (LLRD) for fine-tuning BEiT (Bao et al., 2021, Sec. 3.1, App. B).

Layer ids follow the backbone (``BEiTViT.get_layer_id``): CLS/mask tokens, position
embeddings and the patch embedding are layer 0, block ``i`` is layer ``i + 1``, and
everything else (a shared relative position bias, final norm, ``fc_norm``, the head, and in
segmentation/detection models the neck and decoders) is layer ``L + 1``, as official BEiT's
``get_num_layer_for_vit``. A parameter of
layer ``l`` gets ``lr = base_lr * decay ** (L + 1 - l)``.

Weight decay by the one rule of :mod:`beitlab.engine.optimizers.no_decay_constructor`
(none on 1-D parameters, biases and the modules' ``no_weight_decay()`` names: for
``BEiTViT`` the CLS and mask tokens, position embeddings and relative position bias tables);
every other parameter gets the configured weight decay.
"""
from typing import Dict, List, Optional, Tuple

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn

from beitlab.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

from .no_decay_constructor import is_no_decay, name_pattern, no_weight_decay_names

__all__ = ['LayerDecayOptimWrapperConstructor']


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Parameter groups by (layer id, weight decay or not), lr scaled by ``decay ** (L+1-l)``.

    The backbone is ``model.backbone`` (parameter names ``backbone.<name>``, as in beitlab
    algorithms, mmseg's ``EncoderDecoder`` and mmdet's ``MaskRCNN``) or, if the model has no
    ``backbone`` attribute, the model itself (plain names). It must have ``num_layers`` (L)
    and ``get_layer_id(name, prefix)``.

    ``paramwise_cfg``:
        layer_decay_rate (float, required): the decay, e.g. 0.65 for BEiT-B on ImageNet.

    Each group also carries ``lr_scale``, ``layer_id``, ``group_name`` and ``param_names``.
    The table of groups is logged once, when the optimizer is built.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        if 'layer_decay_rate' not in paramwise_cfg:
            raise KeyError('LayerDecayOptimWrapperConstructor needs paramwise_cfg.layer_decay_rate '
                           f'(e.g. 0.65); got paramwise_cfg={paramwise_cfg}')
        self.layer_decay_rate = float(paramwise_cfg.pop('layer_decay_rate'))
        if not 0.0 < self.layer_decay_rate <= 1.0:
            raise ValueError(f'layer_decay_rate must be in (0, 1], got {self.layer_decay_rate}')
        if paramwise_cfg:
            raise KeyError(f'LayerDecayOptimWrapperConstructor: unknown paramwise_cfg keys '
                           f'{sorted(paramwise_cfg)}; only layer_decay_rate is supported')
        super().__init__(optim_wrapper_cfg, None)

    @staticmethod
    def find_backbone(model: nn.Module) -> Tuple[nn.Module, str]:
        """-> (backbone, prefix of its parameter names in ``model``)."""
        if hasattr(model, 'module') and not hasattr(model, 'backbone'):
            model = model.module  # (Distributed)DataParallel wrappers
        backbone, prefix = (model.backbone, 'backbone.') if hasattr(model, 'backbone') else (model, '')
        for attr in ('num_layers', 'get_layer_id'):
            if not hasattr(backbone, attr):
                raise AttributeError(
                    f'LayerDecayOptimWrapperConstructor: the backbone {type(backbone).__name__} has '
                    f'no {attr!r}; a layer-decayed backbone needs num_layers and get_layer_id '
                    f'(see BEiTViT)')
        return backbone, prefix

    def build_param_groups(self, model: nn.Module) -> List[dict]:
        """One group per (layer id, decay / no decay), ordered by layer."""
        base_lr = self.optimizer_cfg['lr']
        weight_decay = self.optimizer_cfg.get('weight_decay', 0.0)
        backbone, prefix = self.find_backbone(model)
        num_layers = int(backbone.num_layers)
        if hasattr(model, 'module') and not hasattr(model, 'backbone'):
            model = model.module
        exempt = no_weight_decay_names(model)
        groups: Dict[str, dict] = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue  # frozen (e.g. a linear probe's backbone)
            layer_id = backbone.get_layer_id(name, prefix) if name.startswith(prefix) \
                else num_layers + 1
            no_decay = is_no_decay(name, param, exempt)
            group_name = f'layer_{layer_id}_{"no_decay" if no_decay else "decay"}'
            if group_name not in groups:
                scale = self.layer_decay_rate ** (num_layers + 1 - layer_id)
                groups[group_name] = dict(
                    params=[], param_names=[], group_name=group_name, layer_id=layer_id,
                    lr_scale=scale, lr=base_lr * scale,
                    weight_decay=0.0 if no_decay else weight_decay)
            groups[group_name]['params'].append(param)
            groups[group_name]['param_names'].append(name)
        return sorted(groups.values(), key=lambda g: (g['layer_id'], g['group_name']))

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """Build the optimizer over the layer-decayed groups and wrap it."""
        groups = self.build_param_groups(model)
        self.log_param_groups(groups)
        optimizer_cfg = self.optimizer_cfg.copy()
        optimizer_cfg['params'] = groups
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        optim_wrapper_cfg = self.optim_wrapper_cfg.copy()
        optim_wrapper_cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(optim_wrapper_cfg, default_args=dict(optimizer=optimizer))

    @staticmethod
    def format_table(groups: List[dict]) -> str:
        """Text table: group, layer, lr scale, weight decay, #params, name pattern."""
        rows = [('group', 'layer', 'lr_scale', 'weight_decay', 'n_params', 'names')]
        for g in groups:
            rows.append((g['group_name'], str(g['layer_id']), f'{g["lr_scale"]:.4g}',
                         f'{g["weight_decay"]:g}', str(sum(p.numel() for p in g['params'])),
                         name_pattern(g['param_names'])))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        return '\n'.join('  '.join(c.ljust(w) for c, w in zip(r[:-1], widths)) + '  ' + r[-1]
                         for r in rows)

    def log_param_groups(self, groups: List[dict]) -> None:
        """Log the group table once (through the current mmengine logger)."""
        msg = (f'layer-wise lr decay {self.layer_decay_rate}, base lr {self.optimizer_cfg["lr"]}: '
               f'{len(groups)} parameter groups\n' + self.format_table(groups))
        print_log(msg, logger='current')

