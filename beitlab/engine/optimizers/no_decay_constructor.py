"""Which parameters get weight decay: the one rule of beitlab's optimizer constructors.

A trainable parameter gets **no** weight decay when

- it is 1-D (LayerNorm weights and biases, ``q_bias`` / ``v_bias``, layer-scale
  ``gamma_1`` / ``gamma_2``), or
- its name ends in ``.bias``, or
- a module of the model lists it in its ``no_weight_decay()`` (names local to that module):
  ``BEiTViT`` lists ``cls_token``, ``pos_embed``, ``mask_token`` and every relative position
  bias table it owns; ``MAEDecoder`` its ``mask_token``.

Every other trainable parameter gets the optimizer's ``weight_decay``. Frozen parameters
(``requires_grad=False``: tokenizers, teachers, frozen stages) are left out of the optimizer.
``NoDecayOptimWrapperConstructor`` (pre-training) applies this rule alone;
``LayerDecayOptimWrapperConstructor`` (fine-tuning, downstream) applies it with layer-wise
learning rates.

Relation to official BEiT pre-training (microsoft/unilm ``beit/optim_factory.py``,
``get_parameter_groups``, called by ``create_optimizer`` with
``skip_list = model.no_weight_decay()`` of ``beit/modeling_pretrain.py``, which is
``{'pos_embed', 'cls_token'}``): official skips 1-D parameters, names ending in ``.bias`` and
those two names, the same as here. Official therefore **does** decay ``mask_token``
(``[1, 1, D]``) and the shared ``rel_pos_bias.relative_position_bias_table``
(``[(2H-1)(2W-1)+3, heads]``), neither 1-D nor a ``.bias``; beitlab exempts both, a beitlab
choice (a learned token and a bias, like ``cls_token`` and the q/v biases). Official
fine-tuning (``beit/run_class_finetuning.py``) decays the per-layer tables
``blocks.i.attn.relative_position_bias_table`` unless ``--disable_weight_decay_on_rel_pos_bias``
is given; beitlab always exempts them.
"""
import re
from collections import OrderedDict
from typing import Collection, Dict, List, Optional, Set

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import Tensor, nn

from beitlab.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

__all__ = ['NoDecayOptimWrapperConstructor', 'is_no_decay', 'name_pattern', 'no_weight_decay_names']


def no_weight_decay_names(model: nn.Module) -> Set[str]:
    """Full parameter names (as in ``model.named_parameters()``) that the modules of
    ``model`` list in their ``no_weight_decay()``.

    Raises:
        ValueError: a module lists a name that is not one of its parameters (a typo would
            otherwise leave that parameter decayed without a word).
    """
    names: Set[str] = set()
    for prefix, module in model.named_modules():
        declared = getattr(module, 'no_weight_decay', None)
        if not callable(declared):
            continue
        own = dict(module.named_parameters())
        for local in declared():
            if local not in own:
                raise ValueError(
                    f'{type(module).__name__}.no_weight_decay() names {local!r}, which is not '
                    f'one of its parameters; expected names from {sorted(own)}')
            names.add(f'{prefix}.{local}' if prefix else local)
    return names


def is_no_decay(name: str, param: Tensor, exempt: Collection[str]) -> bool:
    """True when the parameter ``name`` gets no weight decay: 1-D, a ``.bias``, or in
    ``exempt`` (from :func:`no_weight_decay_names`)."""
    return param.ndim <= 1 or name.endswith('.bias') or name in exempt


def name_pattern(names: List[str], limit: int = 6) -> str:
    """Compact list of names: ``backbone.blocks.3.{attn.qkv.weight, mlp.fc1.weight}``."""
    grouped: Dict[str, List[str]] = OrderedDict()
    for n in names:
        m = re.match(r'^(.*?blocks\.\d+\.)(.+)$', n)
        head, tail = (m.group(1), m.group(2)) if m else (n, '')
        grouped.setdefault(head, []).append(tail)
    parts = []
    for head, tails in grouped.items():
        tails = [t for t in tails if t]
        if not tails:
            parts.append(head)
            continue
        shown = ', '.join(tails[:limit]) + (f', ... (+{len(tails) - limit})'
                                            if len(tails) > limit else '')
        parts.append(f'{head}{{{shown}}}')
    return '; '.join(parts)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class NoDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Two parameter groups, ``decay`` (the optimizer's ``weight_decay``) and ``no_decay``
    (weight decay 0), by the rule of this module; every parameter at the optimizer's lr.

    For pre-training, where official BEiT has no layer-wise lr. The groups follow official
    ``get_parameter_groups`` without a layer assigner (one ``decay``, one ``no_decay`` group,
    in the order their first parameter appears). ``optimizer.weight_decay`` must be given
    (the constructor exists to exempt parameters from it); ``paramwise_cfg`` takes no keys.
    Each group also carries ``group_name`` and ``param_names``; the groups are logged once,
    when the optimizer is built.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        if paramwise_cfg:
            raise KeyError(f'NoDecayOptimWrapperConstructor takes no paramwise_cfg keys (the '
                           f'rule is the modules\' no_weight_decay() plus 1-D parameters and '
                           f'biases); got paramwise_cfg={dict(paramwise_cfg)}')
        super().__init__(optim_wrapper_cfg, None)
        if 'weight_decay' not in self.optimizer_cfg:
            raise KeyError(f'NoDecayOptimWrapperConstructor needs optimizer.weight_decay (e.g. '
                           f'0.05); got optimizer={dict(self.optimizer_cfg)}')

    def build_param_groups(self, model: nn.Module) -> List[dict]:
        """The ``decay`` / ``no_decay`` groups over the trainable parameters of ``model``."""
        weight_decay = self.optimizer_cfg['weight_decay']
        exempt = no_weight_decay_names(model)
        groups: Dict[str, dict] = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            no_decay = is_no_decay(name, param, exempt)
            group_name = 'no_decay' if no_decay else 'decay'
            if group_name not in groups:
                groups[group_name] = dict(params=[], param_names=[], group_name=group_name,
                                          weight_decay=0.0 if no_decay else weight_decay)
            groups[group_name]['params'].append(param)
            groups[group_name]['param_names'].append(name)
        return list(groups.values())

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """Build the optimizer over the two groups and wrap it."""
        groups = self.build_param_groups(model)
        rows = [f'{g["group_name"]}: weight_decay {g["weight_decay"]:g}, '
                f'{sum(p.numel() for p in g["params"])} values in {len(g["params"])} tensors: '
                f'{name_pattern(g["param_names"])}' for g in groups]
        print_log('parameter groups (no layer decay):\n' + '\n'.join(rows), logger='current')
        optimizer_cfg = self.optimizer_cfg.copy()
        optimizer_cfg['params'] = groups
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        optim_wrapper_cfg = self.optim_wrapper_cfg.copy()
        optim_wrapper_cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(optim_wrapper_cfg, default_args=dict(optimizer=optimizer))
