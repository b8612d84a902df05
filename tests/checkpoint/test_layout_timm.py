"""The timm layout: timm -> beitlab -> timm is bit-identical, timm -> beitlab -> official gives
the official fine-tuning state dict, and the imported state loads strictly into BEiTViT.

timm does not import beside this torch (it needs torchvision), so its state dict is written
out here from ``timm/models/beit.py`` (``Beit.__init__``, ``Block``, ``Attention``,
``RelativePositionBias``; ``PatchEmbed`` and ``Mlp`` from ``timm/layers``), including the
``relative_position_index`` buffers older timm releases saved.
"""
from typing import Dict, Sequence, Tuple

import pytest
import torch
from torch import Tensor, nn

from beitlab.checkpoint.errors import CheckpointKeyError
from beitlab.checkpoint.layouts import official
from beitlab.checkpoint.layouts.timm import LAYOUT
from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.models.heads.cls_head import ClsHead
from beitlab.utils import register_all_modules
from tests.models.test_beit_vit import official_index  # written from beit/modeling_finetune.py

DIM, DEPTH, HEADS, HIDDEN, SIDE, PATCH, CLASSES = 64, 2, 4, 128, 4, 8, 7


def backbone_for(arch: dict, **kwargs) -> BEiTViT:
    """The ``BEiTViT`` that the ``arch`` a layout returns describes (``kwargs``: the settings
    weights cannot tell, such as ``out_type``)."""
    return BEiTViT(arch=arch['arch'], img_size=arch['img_size'], patch_size=arch['patch_size'],
                   in_channels=arch['in_channels'], use_abs_pos_emb=arch['use_abs_pos_emb'],
                   use_shared_rel_pos_bias=arch['use_shared_rel_pos_bias'],
                   use_rel_pos_bias=arch['use_rel_pos_bias'],
                   layer_scale_init_value=0.1 if arch['layer_scale'] else 0.0,
                   qv_bias=arch['qv_bias'], with_cls_token=arch['with_cls_token'],
                   with_mask_token=arch['with_mask_token'], **kwargs)


def random_state(shapes: Dict[str, Tuple[int, ...]], seed: int = 0) -> Dict[str, Tensor]:
    """Random tensors of those shapes; ``relative_position_index`` buffers get the official
    index of the grid their shape implies."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in shapes.items():
        if k.endswith('relative_position_index'):
            side = int(round((shape[0] - 1) ** 0.5))
            state[k] = official_index(side, side)
        else:
            state[k] = torch.randn(shape, generator=g)
    return state


def timm_beit_shapes(global_pool: str = 'avg', use_abs_pos_emb: bool = False,
                     use_rel_pos_bias: bool = True, use_shared_rel_pos_bias: bool = False,
                     init_values: float = 0.1, num_classes: int = CLASSES,
                     index_buffers: Sequence[str] = ()) -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of ``timm.models.beit.Beit(img_size=32, patch_size=8, embed_dim=64, depth=2,
    num_heads=4, mlp_ratio=2, ...)``.state_dict(), in timm's order: the model's own
    parameters, then its modules in the order ``__init__`` creates them. No ``mask_token``
    (commented out), ``k_bias`` not saved; ``index_buffers``: ``'shared'`` and/or ``'layer'``
    for the persistent index buffers of timm < 1.0.23 (shared) and < 0.9.6 (both)."""
    n = SIDE * SIDE
    table = ((2 * SIDE - 1) ** 2 + 3, HEADS)
    shapes = {'cls_token': (1, 1, DIM)}
    if use_abs_pos_emb:
        shapes['pos_embed'] = (1, n + 1, DIM)
    shapes.update({'patch_embed.proj.weight': (DIM, 3, PATCH, PATCH),
                   'patch_embed.proj.bias': (DIM, )})
    if use_shared_rel_pos_bias:
        shapes['rel_pos_bias.relative_position_bias_table'] = table
        if 'shared' in index_buffers:
            shapes['rel_pos_bias.relative_position_index'] = (n + 1, n + 1)
    for i in range(DEPTH):
        b = f'blocks.{i}.'
        if init_values:
            shapes.update({b + 'gamma_1': (DIM, ), b + 'gamma_2': (DIM, )})
        shapes.update({b + 'norm1.weight': (DIM, ), b + 'norm1.bias': (DIM, ),
                       b + 'attn.q_bias': (DIM, ), b + 'attn.v_bias': (DIM, )})
        if use_rel_pos_bias:
            shapes[b + 'attn.relative_position_bias_table'] = table
            if 'layer' in index_buffers:
                shapes[b + 'attn.relative_position_index'] = (n + 1, n + 1)
        shapes.update({b + 'attn.qkv.weight': (3 * DIM, DIM),
                       b + 'attn.proj.weight': (DIM, DIM), b + 'attn.proj.bias': (DIM, ),
                       b + 'norm2.weight': (DIM, ), b + 'norm2.bias': (DIM, ),
                       b + 'mlp.fc1.weight': (HIDDEN, DIM), b + 'mlp.fc1.bias': (HIDDEN, ),
                       b + 'mlp.fc2.weight': (DIM, HIDDEN), b + 'mlp.fc2.bias': (DIM, )})
    norm = 'fc_norm' if global_pool == 'avg' else 'norm'
    shapes.update({f'{norm}.weight': (DIM, ), f'{norm}.bias': (DIM, )})
    if num_classes:
        shapes.update({'head.weight': (num_classes, DIM), 'head.bias': (num_classes, )})
    return shapes


CASES = {
    # beit_base_patch16_224: per-layer tables, mean pooling, layer scale
    'beit': dict(),
    # CLS pooling, shared table and absolute positions, no layer scale, no head
    'token-shared': dict(global_pool='token', use_abs_pos_emb=True, use_rel_pos_bias=False,
                         use_shared_rel_pos_bias=True, init_values=0.0, num_classes=0),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_timm_beitlab_timm_is_bit_identical(case: str) -> None:
    timm_state = random_state(timm_beit_shapes(**CASES[case]))
    beitlab, arch = LAYOUT.to_beitlab(timm_state, 'classifier')
    assert not any(k.endswith('relative_position_index') for k in beitlab)
    again = LAYOUT.from_beitlab(beitlab, 'classifier', arch)
    assert list(again) == list(timm_state)  # same keys, in timm's order
    for k, v in timm_state.items():
        assert again[k].dtype == v.dtype and torch.equal(again[k], v), k


@pytest.mark.parametrize('case', sorted(CASES))
def test_timm_to_official_adds_the_index_buffers_of_the_official_model(case: str) -> None:
    timm_state = random_state(timm_beit_shapes(**CASES[case]))
    beitlab, arch = LAYOUT.to_beitlab(timm_state, 'classifier')
    exported = official.LAYOUT.from_beitlab(beitlab, 'classifier', arch)
    # the official fine-tuning model (beit/modeling_finetune.py) has timm's parameters and
    # saves a relative_position_index next to every table
    tables = [k for k in timm_state if k.endswith('relative_position_bias_table')]
    index_keys = [k.replace('bias_table', 'index') for k in tables]
    assert sorted(exported) == sorted([*timm_state, *index_keys])
    for k, v in timm_state.items():
        assert torch.equal(exported[k], v), k
    for k in index_keys:
        assert torch.equal(exported[k], official_index(SIDE, SIDE)), k


def test_imported_classifier_loads_strictly_into_beitvit_and_clshead() -> None:
    register_all_modules()
    beitlab, arch = LAYOUT.to_beitlab(random_state(timm_beit_shapes()), 'classifier')
    assert arch['arch'] == dict(embed_dims=DIM, num_layers=DEPTH, num_heads=HEADS,
                                feedforward_channels=HIDDEN)
    assert arch['img_size'] == [SIDE * PATCH] * 2 and not arch['with_mask_token']
    model = nn.ModuleDict(dict(backbone=backbone_for(arch, out_type='avg_featmap'),
                               head=ClsHead(num_classes=CLASSES, in_channels=DIM)))
    result = model.load_state_dict(beitlab, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert model.head(model.backbone(torch.randn(1, 3, 32, 32))).shape == (1, CLASSES)


def test_index_buffers_of_older_timm_are_checked_and_dropped() -> None:
    shapes = timm_beit_shapes(use_shared_rel_pos_bias=True, index_buffers=('shared', 'layer'))
    state = random_state(shapes)
    beitlab, _ = LAYOUT.to_beitlab(state, 'classifier')
    assert sorted(beitlab) == sorted(
        ('head.fc.' + k[5:]) if k.startswith('head.') else 'backbone.' + k
        for k in state if not k.endswith('relative_position_index'))
    state['blocks.1.attn.relative_position_index'] = official_index(SIDE, SIDE).flip(0)
    with pytest.raises(ValueError, match='blocks.1.attn.relative_position_index'):
        LAYOUT.to_beitlab(state, 'classifier')


def test_a_key_timm_beit_does_not_have_is_named() -> None:
    state = random_state(timm_beit_shapes())
    state['blocks.0.mlp.norm.weight'] = torch.ones(HIDDEN)  # scale_mlp variant
    with pytest.raises(CheckpointKeyError, match='blocks.0.mlp.norm.weight') as err:
        LAYOUT.to_beitlab(state, 'classifier')
    assert err.value.unknown == ['blocks.0.mlp.norm.weight']
    del state['blocks.0.mlp.norm.weight'], state['blocks.1.norm2.bias']
    with pytest.raises(CheckpointKeyError, match='blocks.1.norm2.bias') as err:
        LAYOUT.to_beitlab(state, 'classifier')
    assert err.value.missing == ['blocks.1.norm2.bias']


def test_timm_has_no_pretraining_model() -> None:
    state = random_state(timm_beit_shapes())
    with pytest.raises(CheckpointKeyError, match='no pre-training model'):
        LAYOUT.to_beitlab(state, 'pretrain')
    beitlab, arch = LAYOUT.to_beitlab(state, 'classifier')
    beitlab['backbone.mask_token'] = torch.zeros(1, 1, DIM)
    with pytest.raises(CheckpointKeyError, match='backbone.mask_token') as err:
        LAYOUT.from_beitlab(beitlab, 'pretrain', arch)
    assert 'head.fc.weight' in err.value.unknown
    # a pre-training leftover in a classifier is dropped, as for the official classifier
    assert list(LAYOUT.from_beitlab(beitlab, 'classifier', arch)) == list(state)


def test_detect() -> None:
    state = random_state(timm_beit_shapes())
    assert LAYOUT.detect(state)
    beitlab, _ = LAYOUT.to_beitlab(state, 'classifier')
    assert not LAYOUT.detect(beitlab)
    assert not LAYOUT.detect({**state, 'mask_token': torch.zeros(1, 1, DIM)})  # official MIM
