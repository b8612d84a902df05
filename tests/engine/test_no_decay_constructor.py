"""The one weight-decay rule (``beitlab/engine/optimizers/no_decay_constructor.py``).

Every shipped config whose optimizer uses ``NoDecayOptimWrapperConstructor`` is built, and
each trainable parameter's weight decay and lr are compared with what mmengine's
``DefaultOptimWrapperConstructor`` gave it with the no-decay list those configs carried
before (``EARLIER_PARAMWISE``, kept here as the reference). Every config on
``LayerDecayOptimWrapperConstructor`` is compared with the rule that constructor had before
it read the shared one (``earlier_layer_decay_no_decay``). Backbones are narrowed to 32
dimensions and at most a 16 x 16 patch grid (same layers, same parameter names) so that the
ViT-L and 1024 px configs build quickly.
"""
import glob
from typing import Dict, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope
from torch import nn

from beitlab.engine.optimizers.layer_decay_constructor import LayerDecayOptimWrapperConstructor
from beitlab.engine.optimizers.no_decay_constructor import (
    NoDecayOptimWrapperConstructor,
    no_weight_decay_names,
)
from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.utils import register_all_modules
from tests.tools_helpers import REPO_ROOT

# The paramwise_cfg every BEiT / BEiT v2 pre-training config and the Fashion-MNIST variants
# base carried before they used NoDecayOptimWrapperConstructor.
EARLIER_PARAMWISE = dict(
    norm_decay_mult=0., bias_decay_mult=0.,
    custom_keys={k: dict(decay_mult=0.) for k in (
        'pos_embed', 'cls_token', 'mask_token', 'relative_position_bias_table',
        'q_bias', 'v_bias', 'gamma_1', 'gamma_2')})

ALL_CONFIGS = sorted(
    [p for p in glob.glob(str(REPO_ROOT / 'configs' / '**' / '*.py'), recursive=True)
     if '/_base_/' not in p]
    + glob.glob(str(REPO_ROOT / 'projects' / '*' / 'configs' / '**' / '*.py'), recursive=True))


def short(path: str) -> str:
    return path.split(str(REPO_ROOT) + '/')[-1]


def constructor_of(path: str) -> str:
    return str(Config.fromfile(path).optim_wrapper.get('constructor', '')).split('.')[-1]


NO_DECAY_CONFIGS = [p for p in ALL_CONFIGS if constructor_of(p) == 'NoDecayOptimWrapperConstructor']
LAYER_DECAY_CONFIGS = [p for p in ALL_CONFIGS
                       if constructor_of(p) == 'LayerDecayOptimWrapperConstructor']


def test_the_pre_training_configs_use_the_rule() -> None:
    """The configs that carried the list (a family left out would not be compared)."""
    expected = {
        'configs/beit/mim_vit-b.py', 'configs/beit/mim_vit-l.py',
        'configs/beit/mim_vit-b_bf16-fast.py', 'configs/beit/mim_vit-b_dvae-8192.py',
        'configs/beit/mim_vit-tiny_1xb8-2it_tiny.py', 'configs/beit/beit_vit-fmnist_fashion-mnist.py',
        'configs/beit/beit_vit-fmnist_1xb64-8e_fashion-mnist.py',
        'configs/beit/beit_vit-fmnist_1xb64-3000it_fashion-mnist-scenes-48x48.py',
        'configs/beitv2/beitv2_vit-b-p16_8xb256-300e_in1k.py',
        'configs/beitv2/beitv2_vit-fmnist_fashion-mnist.py',
        'configs/mae/mae_vit-fmnist_fashion-mnist.py', 'configs/simmim/simmim_vit-fmnist_fashion-mnist.py',
        'configs/maskfeat/maskfeat_vit-fmnist_fashion-mnist.py',
    }
    assert {short(p) for p in NO_DECAY_CONFIGS} == expected
    assert len(LAYER_DECAY_CONFIGS) >= 10
    for path in ALL_CONFIGS:
        paramwise = Config.fromfile(path).optim_wrapper.get('paramwise_cfg') or {}
        keys = set(paramwise.get('custom_keys', {}))
        assert not keys >= {'q_bias', 'gamma_1', 'relative_position_bias_table'}, \
            f'{short(path)} carries its own copy of the no-decay list; use the constructor'


def build_model(cfg: Config) -> nn.Module:
    """The config's model with untrained tokenizers and narrow backbones, in its scope."""
    register_all_modules()
    model_cfg = cfg.model
    if 'target_generator' in model_cfg and 'checkpoint' in model_cfg.target_generator:
        model_cfg.target_generator.checkpoint = None
    backbone = model_cfg.get('backbone')
    if backbone is not None and backbone.type.split('.')[-1] == 'BEiTViT':
        arch = backbone.get('arch', 'base')
        layers = BEiTViT.arch_zoo[arch]['num_layers'] if isinstance(arch, str) else arch['num_layers']
        backbone.arch = dict(embed_dims=32, num_layers=layers, num_heads=2, feedforward_channels=64)
        backbone.init_cfg = None
        patch = backbone.get('patch_size', 16)
        # a 16 x 16 patch grid at most: per-layer bias indices of a 64 x 64 grid take seconds
        img_size = backbone.get('img_size', 224)
        if isinstance(img_size, int) and img_size > 16 * patch:
            backbone.img_size = 16 * patch
    model_cfg.pop('pretrained', None)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'beitlab')):
        return MODELS.build(model_cfg)


def groups_by_name(model: nn.Module, optim_wrapper_cfg: dict,
                   scope: str) -> Dict[str, Tuple[float, float]]:
    """``{parameter name: (lr, weight decay)}`` of the optimizer the config builds."""
    with DefaultScope.overwrite_default_scope(scope):
        optimizer = build_optim_wrapper(model, optim_wrapper_cfg).optimizer
    name_of = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in optimizer.param_groups:
        for p in group['params']:
            assert name_of[id(p)] not in out, f'{name_of[id(p)]} is in two groups'
            out[name_of[id(p)]] = (group['lr'], group['weight_decay'])
    return out


def plain_wrapper(cfg: Config, **fields) -> dict:
    """The config's optimizer in a plain OptimWrapper (an AmpOptimWrapper needs CUDA; the
    wrapper type does not change the groups)."""
    return dict(type='OptimWrapper', optimizer=cfg.optim_wrapper.optimizer.to_dict(), **fields)


@pytest.mark.parametrize('path', NO_DECAY_CONFIGS, ids=short)
def test_no_decay_groups_equal_the_earlier_paramwise_list(path: str) -> None:
    cfg = Config.fromfile(path)
    model = build_model(cfg)
    scope = cfg.get('default_scope', 'beitlab')
    new = groups_by_name(model, plain_wrapper(cfg, constructor=cfg.optim_wrapper.constructor), scope)
    earlier = groups_by_name(model, plain_wrapper(cfg, paramwise_cfg=EARLIER_PARAMWISE), scope)
    assert new.keys() == earlier.keys() == {n for n, p in model.named_parameters() if p.requires_grad}
    differ = {n: (earlier[n], new[n]) for n in new if new[n] != earlier[n]}
    assert not differ, f'{short(path)}: (earlier, now) (lr, weight decay) differ: {differ}'
    # the comparison covers the corners: exempt parameters that are neither 1-D nor biases
    params = dict(model.named_parameters())
    exempt_nd = {n for n, (_, wd) in new.items() if wd == 0 and params[n].ndim > 1}
    assert exempt_nd and 'backbone.mask_token' in exempt_nd
    assert any(wd > 0 for _, wd in new.values())


def earlier_layer_decay_no_decay(name: str, param: torch.Tensor, prefix: str) -> bool:
    """The rule LayerDecayOptimWrapperConstructor had before it read the shared one: 1-D,
    names ending in ``.bias`` or ``relative_position_bias_table``, and the backbone's
    ``pos_embed`` / ``cls_token``."""
    local = name[len(prefix):] if name.startswith(prefix) else None
    return (param.ndim <= 1 or name.endswith(('.bias', 'relative_position_bias_table'))
            or local in ('pos_embed', 'cls_token'))


@pytest.mark.parametrize('path', LAYER_DECAY_CONFIGS, ids=short)
def test_layer_decay_groups_equal_the_earlier_rule(path: str) -> None:
    cfg = Config.fromfile(path)
    model = build_model(cfg)
    scope = cfg.get('default_scope', 'beitlab')
    wrapper_cfg = plain_wrapper(cfg, constructor=cfg.optim_wrapper.constructor,
                                paramwise_cfg=cfg.optim_wrapper.paramwise_cfg.to_dict())
    new = groups_by_name(model, wrapper_cfg, scope)
    backbone, prefix = LayerDecayOptimWrapperConstructor.find_backbone(model)
    base_lr, wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    decay, layers = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate, backbone.num_layers
    params = dict(model.named_parameters())
    assert new.keys() == {n for n, p in params.items() if p.requires_grad}
    for name, (lr, got_wd) in new.items():
        layer = backbone.get_layer_id(name, prefix) if name.startswith(prefix) else layers + 1
        expected_wd = 0.0 if earlier_layer_decay_no_decay(name, params[name], prefix) else wd
        assert got_wd == expected_wd, f'{short(path)}: {name}'
        assert lr == pytest.approx(base_lr * decay ** (layers + 1 - layer), rel=1e-12), name
    assert any(params[n].ndim > 1 and w == 0 for n, (_, w) in new.items())


# ------------------------------------------------------------------------------ the parts
class Toy(nn.Module):
    """A backbone-like module with its own no-decay names, a frozen part and a head."""

    def __init__(self, declared=('token', )) -> None:
        super().__init__()
        self.declared = set(declared)
        self.token = nn.Parameter(torch.zeros(1, 1, 4))
        self.proj = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.frozen = nn.Linear(4, 4).requires_grad_(False)

    def no_weight_decay(self):
        return self.declared


def test_groups_of_a_small_model() -> None:
    register_all_modules()
    model = nn.Sequential(Toy(), nn.Linear(4, 2))
    assert no_weight_decay_names(model) == {'0.token'}
    ctor = NoDecayOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)))
    groups = {g['group_name']: g for g in ctor(model).optimizer.param_groups}
    assert set(groups) == {'decay', 'no_decay'}
    assert groups['decay']['param_names'] == ['0.proj.weight', '1.weight']
    assert groups['decay']['weight_decay'] == 0.05
    assert groups['no_decay']['param_names'] == ['0.token', '0.proj.bias', '0.norm.weight',
                                                 '0.norm.bias', '1.bias']
    assert groups['no_decay']['weight_decay'] == 0.0
    assert all(g['lr'] == 1e-3 for g in groups.values())


def test_bad_declarations_and_configs_are_named() -> None:
    with pytest.raises(ValueError, match=r"Toy.no_weight_decay\(\) names 'tokn'"):
        no_weight_decay_names(Toy(declared=('tokn', )))
    with pytest.raises(KeyError, match='takes no paramwise_cfg keys'):
        NoDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
                                       dict(custom_keys={}))
    with pytest.raises(KeyError, match='needs optimizer.weight_decay'):
        NoDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW', lr=1e-3)))


def test_backbone_and_mae_decoder_name_their_exempt_parameters() -> None:
    from beitlab.models.heads.mae_decoder import MAEDecoder
    vit = BEiTViT(arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
                  img_size=32, patch_size=4, use_shared_rel_pos_bias=True, use_rel_pos_bias=True)
    assert vit.no_weight_decay() == {
        'cls_token', 'pos_embed', 'mask_token', 'rel_pos_bias.relative_position_bias_table',
        'blocks.0.attn.relative_position_bias_table', 'blocks.1.attn.relative_position_bias_table'}
    decoder = MAEDecoder(grid=(8, 8), patch_size=4, embed_dims=32, decoder_embed_dims=16,
                         decoder_depth=1, decoder_num_heads=2)
    assert no_weight_decay_names(nn.ModuleDict(dict(backbone=vit, head=decoder))) >= {
        'backbone.mask_token', 'head.mask_token'}
