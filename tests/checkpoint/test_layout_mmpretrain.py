"""The mmpretrain layout: mmpretrain -> beitlab -> mmpretrain is bit-identical for BEiT and
BEiT v2 pre-training and for the fine-tuned classifier; mmpretrain -> beitlab -> official
gives the official names; the imported states load strictly into beitlab modules.

mmpretrain does not import beside this torch (it needs torchvision), so its state dicts are
written out here from its source: ``mmpretrain/models/backbones/beit.py`` (``BEiTViT``,
``BEiTTransformerEncoderLayer``, ``RelativePositionBias``), ``mmpretrain/models/utils/
attention.py`` (``BEiTAttention``), ``mmpretrain/models/backbones/vision_transformer.py``
(``TransformerEncoderLayer``: ``ln1``, ``ln2``), mmcv's ``PatchEmbed`` and ``FFN``
(``mmcv/cnn/bricks/transformer.py``), ``mmpretrain/models/selfsup/beit.py``
(``BEiTPretrainViT``: ``mask_token``), ``mmpretrain/models/heads/beitv1_head.py`` /
``beitv2_head.py`` (``cls_head``), ``mmpretrain/models/necks/beitv2_neck.py``
(``patch_aggregation``, ``norm``) and ``mmpretrain/models/heads/linear_head.py`` (``fc``).
"""
from typing import Dict, Tuple

import pytest
import torch
from torch import nn

from beitlab.checkpoint.errors import CheckpointKeyError
from beitlab.checkpoint.layouts import official
from beitlab.checkpoint.layouts.mmpretrain import LAYOUT
from beitlab.models.heads.cls_head import ClsHead
from beitlab.models.heads.mim_head import MIMHead
from beitlab.models.necks.patch_aggregation_neck import PatchAggregationNeck
from beitlab.utils import register_all_modules
from tests.checkpoint.test_layout_timm import backbone_for, random_state
from tests.models.test_beit_vit import official_index  # written from beit/modeling_finetune.py

DIM, DEPTH, HEADS, HIDDEN, SIDE, PATCH, VOCAB, CLASSES = 64, 2, 4, 128, 4, 8, 50, 7
N = SIDE * SIDE
TABLE = ((2 * SIDE - 1) ** 2 + 3, HEADS)

# BEiTTransformerEncoderLayer key -> official block key (beit/modeling_pretrain.py Block),
# written here independently of the layout module
LAYER_TO_OFFICIAL = {
    'gamma_1': 'gamma_1', 'gamma_2': 'gamma_2', 'ln1.weight': 'norm1.weight',
    'ln1.bias': 'norm1.bias', 'attn.q_bias': 'attn.q_bias', 'attn.v_bias': 'attn.v_bias',
    'attn.relative_position_bias_table': 'attn.relative_position_bias_table',
    'attn.relative_position_index': 'attn.relative_position_index',
    'attn.qkv.weight': 'attn.qkv.weight', 'attn.proj.weight': 'attn.proj.weight',
    'attn.proj.bias': 'attn.proj.bias', 'ln2.weight': 'norm2.weight', 'ln2.bias': 'norm2.bias',
    'ffn.layers.0.0.weight': 'mlp.fc1.weight', 'ffn.layers.0.0.bias': 'mlp.fc1.bias',
    'ffn.layers.1.weight': 'mlp.fc2.weight', 'ffn.layers.1.bias': 'mlp.fc2.bias'}


def layer_shapes(prefix: str, table: bool) -> Dict[str, Tuple[int, ...]]:
    """One ``BEiTTransformerEncoderLayer`` (``bias='qv_bias'``, layer scale): its own
    ``gamma_1/2``, then ``ln1``, ``attn`` (``BEiTAttention``: ``q_bias``, ``v_bias``, the table
    and its persistent index with ``use_rel_pos_bias``, ``qkv`` without bias, ``proj``),
    ``ln2`` and ``ffn`` (mmcv ``FFN``: ``layers.0`` = Sequential(Linear, GELU, Dropout),
    ``layers.1`` = Linear)."""
    shapes = {prefix + 'gamma_1': (DIM, ), prefix + 'gamma_2': (DIM, ),
              prefix + 'ln1.weight': (DIM, ), prefix + 'ln1.bias': (DIM, ),
              prefix + 'attn.q_bias': (DIM, ), prefix + 'attn.v_bias': (DIM, )}
    if table:
        shapes.update({prefix + 'attn.relative_position_bias_table': TABLE,
                       prefix + 'attn.relative_position_index': (N + 1, N + 1)})
    shapes.update({prefix + 'attn.qkv.weight': (3 * DIM, DIM),
                   prefix + 'attn.proj.weight': (DIM, DIM), prefix + 'attn.proj.bias': (DIM, ),
                   prefix + 'ln2.weight': (DIM, ), prefix + 'ln2.bias': (DIM, ),
                   prefix + 'ffn.layers.0.0.weight': (HIDDEN, DIM),
                   prefix + 'ffn.layers.0.0.bias': (HIDDEN, ),
                   prefix + 'ffn.layers.1.weight': (DIM, HIDDEN),
                   prefix + 'ffn.layers.1.bias': (DIM, )})
    return shapes


def beit_pretrain_shapes(v2: bool = False, use_abs_pos_emb: bool = False
                         ) -> Dict[str, Tuple[int, ...]]:
    """``BEiT`` with ``BEiTPretrainViT`` (shared table, ``final_norm`` for v1; v2:
    ``final_norm=False`` and ``BEiTV2Neck`` with two layers) and ``BEiTV1Head`` /
    ``BEiTV2Head``; without the target generator."""
    b = 'backbone.'
    shapes = {b + 'cls_token': (1, 1, DIM)}
    if use_abs_pos_emb:
        shapes[b + 'pos_embed'] = (1, N + 1, DIM)
    shapes.update({b + 'mask_token': (1, 1, DIM), b + 'patch_embed.projection.weight':
                   (DIM, 3, PATCH, PATCH), b + 'patch_embed.projection.bias': (DIM, ),
                   b + 'rel_pos_bias.relative_position_bias_table': TABLE,
                   b + 'rel_pos_bias.relative_position_index': (N + 1, N + 1)})
    for i in range(DEPTH):
        shapes.update(layer_shapes(f'{b}layers.{i}.', table=False))
    if v2:
        for j in range(2):
            shapes.update(layer_shapes(f'neck.patch_aggregation.{j}.', table=False))
        shapes.update({'neck.norm.weight': (DIM, ), 'neck.norm.bias': (DIM, )})
    else:
        shapes.update({b + 'ln1.weight': (DIM, ), b + 'ln1.bias': (DIM, )})
    shapes.update({'head.cls_head.weight': (VOCAB, DIM), 'head.cls_head.bias': (VOCAB, )})
    return shapes


def classifier_shapes() -> Dict[str, Tuple[int, ...]]:
    """``ImageClassifier`` with ``BEiTViT`` as in ``configs/beit/benchmarks`` (per-layer
    tables, ``out_type='avg_featmap'``: ``ln2``, ``final_norm=False``) and ``LinearClsHead``."""
    b = 'backbone.'
    shapes = {b + 'cls_token': (1, 1, DIM), b + 'patch_embed.projection.weight':
              (DIM, 3, PATCH, PATCH), b + 'patch_embed.projection.bias': (DIM, )}
    for i in range(DEPTH):
        shapes.update(layer_shapes(f'{b}layers.{i}.', table=True))
    shapes.update({b + 'ln2.weight': (DIM, ), b + 'ln2.bias': (DIM, ),
                   'head.fc.weight': (CLASSES, DIM), 'head.fc.bias': (CLASSES, )})
    return shapes


def official_names(mm: Dict[str, torch.Tensor], kind: str) -> Dict[str, torch.Tensor]:
    """The official checkpoint these mmpretrain tensors make (beit/modeling_pretrain.py,
    beit/modeling_finetune.py), renamed here by hand."""
    top = {'cls_token': 'cls_token', 'mask_token': 'mask_token', 'pos_embed': 'pos_embed',
           'patch_embed.projection.weight': 'patch_embed.proj.weight',
           'patch_embed.projection.bias': 'patch_embed.proj.bias',
           'rel_pos_bias.relative_position_bias_table': 'rel_pos_bias.relative_position_bias_table',
           'rel_pos_bias.relative_position_index': 'rel_pos_bias.relative_position_index',
           'ln1.weight': 'norm.weight', 'ln1.bias': 'norm.bias',
           'ln2.weight': 'fc_norm.weight', 'ln2.bias': 'fc_norm.bias'}
    heads = {'head.cls_head.weight': 'lm_head.weight', 'head.cls_head.bias': 'lm_head.bias',
             'head.fc.weight': 'head.weight', 'head.fc.bias': 'head.bias',
             'neck.norm.weight': 'norm.weight', 'neck.norm.bias': 'norm.bias'}
    out = {}
    for k, v in mm.items():
        if k.startswith('neck.patch_aggregation.'):
            continue
        if k in heads:
            out[heads[k]] = v
            continue
        inner = k[len('backbone.'):]
        if inner.startswith('layers.'):
            _, i, suffix = inner.split('.', 2)
            out[f'blocks.{i}.{LAYER_TO_OFFICIAL[suffix]}'] = v
        else:
            out[top[inner]] = v
    return out


CASES = {'beit': ('pretrain', lambda: beit_pretrain_shapes()),
         'beit-abs-pos': ('pretrain', lambda: beit_pretrain_shapes(use_abs_pos_emb=True)),
         'beitv2': ('pretrain', lambda: beit_pretrain_shapes(v2=True)),
         'classifier': ('classifier', classifier_shapes)}
TOKENIZER = {'target_generator.encoder.cls_token': torch.zeros(1, 1, DIM),  # VQKD, skipped
             'target_generator.quantize.embedding.weight': torch.zeros(VOCAB, 32)}


@pytest.mark.parametrize('case', sorted(CASES))
def test_mmpretrain_beitlab_mmpretrain_is_bit_identical(case: str) -> None:
    kind, shapes = CASES[case]
    mm = random_state(shapes())
    beitlab, arch = LAYOUT.to_beitlab({**mm, **TOKENIZER}, kind)
    assert not any(k.endswith('relative_position_index') for k in beitlab)
    assert not any(k.startswith('target_generator.') for k in beitlab)
    again = LAYOUT.from_beitlab(beitlab, kind, arch)
    assert sorted(again) == sorted(mm)
    for k, v in mm.items():
        assert again[k].dtype == v.dtype and torch.equal(again[k], v), k


@pytest.mark.parametrize('case', sorted(CASES))
def test_mmpretrain_to_official(case: str) -> None:
    kind, shapes = CASES[case]
    mm = random_state(shapes())
    beitlab, arch = LAYOUT.to_beitlab(mm, kind)
    backbone_and_head = {k: v for k, v in beitlab.items() if not k.startswith('neck.')}
    exported = official.LAYOUT.from_beitlab(backbone_and_head, kind, arch)
    expected = official_names(mm, kind)
    assert sorted(exported) == sorted(expected)
    for k, v in expected.items():
        assert torch.equal(exported[k], v), k
    index = [k for k in exported if k.endswith('relative_position_index')]
    assert index and all(torch.equal(exported[k], official_index(SIDE, SIDE)) for k in index)


def test_imported_states_load_strictly() -> None:
    register_all_modules()
    for case, (kind, shapes) in CASES.items():
        beitlab, arch = LAYOUT.to_beitlab(random_state(shapes()), kind)
        if kind == 'classifier':
            modules = dict(backbone=backbone_for(arch, out_type='avg_featmap'),
                           head=ClsHead(num_classes=CLASSES, in_channels=DIM))
        else:
            modules = dict(backbone=backbone_for(arch, out_type='raw'),
                           head=MIMHead(in_channels=DIM, vocab_size=VOCAB))
        if case == 'beitv2':
            modules['neck'] = PatchAggregationNeck(DIM, HEADS, HIDDEN, num_layers=2)
            # the shared final norm of mmpretrain's neck is both norms here
            assert torch.equal(beitlab['neck.norm.weight'], beitlab['backbone.norm.weight'])
        result = nn.ModuleDict(modules).load_state_dict(beitlab, strict=True)
        assert not result.missing_keys and not result.unexpected_keys, case


def test_a_vision_transformer_head_imports_and_exports_as_linear_head() -> None:
    mm = random_state(classifier_shapes())
    mm['head.layers.head.weight'], mm['head.layers.head.bias'] = \
        mm.pop('head.fc.weight'), mm.pop('head.fc.bias')
    beitlab, arch = LAYOUT.to_beitlab(mm, 'classifier')
    assert torch.equal(beitlab['head.fc.weight'], mm['head.layers.head.weight'])
    assert 'head.fc.weight' in LAYOUT.from_beitlab(beitlab, 'classifier', arch)
    mm['head.layers.pre_logits.weight'] = torch.zeros(DIM, DIM)  # a hidden layer: not BEiT's
    with pytest.raises(CheckpointKeyError, match='head.layers.pre_logits.weight'):
        LAYOUT.to_beitlab(mm, 'classifier')


def test_keys_that_cannot_be_placed_are_named() -> None:
    mm = random_state(classifier_shapes())
    mm['backbone.layers.0.attn.qkv.bias'] = torch.zeros(3 * DIM)  # bias=True: a k bias
    with pytest.raises(CheckpointKeyError, match='backbone.layers.0.attn.qkv.bias') as err:
        LAYOUT.to_beitlab(mm, 'classifier')
    assert err.value.unknown == ['backbone.layers.0.attn.qkv.bias']
    del mm['backbone.layers.0.attn.qkv.bias'], mm['backbone.layers.1.ffn.layers.1.bias']
    with pytest.raises(CheckpointKeyError, match='backbone.layers.1.ffn.layers.1.bias') as err:
        LAYOUT.to_beitlab(mm, 'classifier')
    assert err.value.missing == ['backbone.layers.1.ffn.layers.1.bias']
    with pytest.raises(CheckpointKeyError, match='head.cls_head.weight'):
        LAYOUT.to_beitlab(random_state(beit_pretrain_shapes()), 'classifier')
    # BEiT v2 with a final norm in the backbone as well: two final norms
    v2 = random_state(beit_pretrain_shapes(v2=True))
    v2.update({'backbone.ln1.weight': torch.ones(DIM), 'backbone.ln1.bias': torch.zeros(DIM)})
    with pytest.raises(CheckpointKeyError, match='given twice'):
        LAYOUT.to_beitlab(v2, 'pretrain')


def test_beitv2_export_needs_one_shared_norm() -> None:
    beitlab, arch = LAYOUT.to_beitlab(random_state(beit_pretrain_shapes(v2=True)), 'pretrain')
    beitlab['neck.norm.weight'] = beitlab['neck.norm.weight'] + 1
    with pytest.raises(ValueError, match='shares one final norm'):
        LAYOUT.from_beitlab(beitlab, 'pretrain', arch)
    with pytest.raises(CheckpointKeyError, match='no neck'):
        LAYOUT.from_beitlab(beitlab, 'classifier', arch)


def test_detect() -> None:
    mm = random_state(classifier_shapes())
    assert LAYOUT.detect(mm)
    beitlab, _ = LAYOUT.to_beitlab(mm, 'classifier')
    assert not LAYOUT.detect(beitlab)
