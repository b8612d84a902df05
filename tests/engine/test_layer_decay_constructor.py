"""LayerDecayOptimWrapperConstructor: every parameter's group, lr scale and weight decay
against the rule written out below (layer ids as official ``beit/optim_factory.py``), computed
here independently of the code."""
import re

import pytest
import torch
from torch import nn

from beitlab.engine.optimizers.layer_decay_constructor import LayerDecayOptimWrapperConstructor
from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.utils import register_all_modules

TINY = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
BASE_LR, WD, DECAY = 1e-3, 0.05, 0.65


def tiny_backbone(**kwargs) -> BEiTViT:
    return BEiTViT(arch=TINY, img_size=32, patch_size=4, use_rel_pos_bias=True,
                   use_shared_rel_pos_bias=True, layer_scale_init_value=0.1, **kwargs)


class Wrapped(nn.Module):
    """A model with the backbone at ``backbone`` plus a neck and a head (as in mmseg/mmdet)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = tiny_backbone(out_type='avg_featmap')
        self.neck = nn.Sequential(nn.Conv2d(64, 8, 1), nn.BatchNorm2d(8))
        self.head = nn.Linear(64, 10)


def expected(name: str, param: torch.Tensor, prefix: str, num_layers: int = 2):
    """(layer id, lr, weight decay), written out by hand: the shared ``rel_pos_bias`` is not
    an embedding, so it is "everything else" (L + 1), as in official BEiT's
    ``get_num_layer_for_vit``; no weight decay on 1-D parameters, biases, ``pos_embed``,
    ``cls_token``, ``mask_token`` and relative position bias tables."""
    local = name[len(prefix):] if name.startswith(prefix) else None
    if local is None:
        layer = num_layers + 1
    elif local in ('cls_token', 'mask_token', 'pos_embed') or local.startswith('patch_embed'):
        layer = 0
    elif re.match(r'blocks\.\d+\.', local):
        layer = int(local.split('.')[1]) + 1
    else:
        layer = num_layers + 1
    no_decay = (param.dim() == 1 or name.endswith('bias')
                or local in ('pos_embed', 'cls_token', 'mask_token')
                or 'relative_position_bias_table' in name)
    return layer, BASE_LR * DECAY ** (num_layers + 1 - layer), 0.0 if no_decay else WD


def build(model: nn.Module):
    register_all_modules()
    ctor = LayerDecayOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=WD)),
        dict(layer_decay_rate=DECAY))
    return ctor(model)


@pytest.mark.parametrize('model_fn,prefix', [(Wrapped, 'backbone.'), (tiny_backbone, '')])
def test_every_parameter_follows_the_rule(model_fn, prefix):
    torch.manual_seed(0)
    model = model_fn()
    optim = build(model).optimizer
    where = {id(p): g for g in optim.param_groups for p in g['params']}
    names = dict(model.named_parameters())
    assert len(where) == len(names), 'every trainable parameter is in exactly one group'
    for name, param in names.items():
        layer, lr, wd = expected(name, param, prefix)
        group = where[id(param)]
        assert group['layer_id'] == layer, name
        assert group['lr'] == pytest.approx(lr, rel=1e-12), name
        assert group['weight_decay'] == wd, name
    # spot checks of the rule's corners
    g = lambda n: where[id(names[prefix + n])]  # noqa: E731
    assert g('rel_pos_bias.relative_position_bias_table')['lr'] == pytest.approx(BASE_LR)
    assert g('patch_embed.proj.weight')['lr'] == pytest.approx(BASE_LR * DECAY ** 3)
    assert g('blocks.1.attn.qkv.weight')['weight_decay'] == WD
    assert g('blocks.0.attn.relative_position_bias_table')['weight_decay'] == 0.0
    assert g('blocks.0.gamma_1')['weight_decay'] == 0.0
    assert g('pos_embed')['weight_decay'] == 0.0 and g('cls_token')['weight_decay'] == 0.0
    assert g('mask_token')['weight_decay'] == 0.0  # 3-D, in BEiTViT.no_weight_decay()
    if prefix:
        assert where[id(names['head.weight'])]['lr'] == pytest.approx(BASE_LR)
        assert where[id(names['neck.1.weight'])]['weight_decay'] == 0.0  # a norm


def test_frozen_parameters_are_left_out_and_table_is_logged(monkeypatch):
    import beitlab.engine.optimizers.layer_decay_constructor as module
    logs = []
    monkeypatch.setattr(module, 'print_log', lambda msg, logger=None: logs.append(msg))
    model = tiny_backbone(frozen_stages=1)
    optim = build(model).optimizer
    in_groups = {id(p) for g in optim.param_groups for p in g['params']}
    for name, p in model.named_parameters():
        assert (id(p) in in_groups) == p.requires_grad, name
    assert len(logs) == 1
    out = logs[0]
    assert 'layer-wise lr decay 0.65' in out and 'layer_2_decay' in out and 'layer_3_no_decay' in out
    assert 'blocks.1.{' in out


def test_bad_config_is_named():
    with pytest.raises(KeyError, match='layer_decay_rate'):
        LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW', lr=1.)), {})
    with pytest.raises(AttributeError, match='num_layers'):
        build(nn.Linear(2, 2))
