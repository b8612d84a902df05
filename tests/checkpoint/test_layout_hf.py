"""The Hugging Face transformers layout against the installed library: tiny random
``BeitForMaskedImageModeling``, ``BeitForImageClassification`` (mean and CLS pooling) and
``BeitBackbone`` convert to beitlab, load strictly and give the same outputs; exported back,
they load strictly into fresh transformers models and give the same outputs again.

Weights are random and non-trivial (layer scale 0.1 + noise, LayerNorm weights 1 + noise,
bias tables N(0, 1)); ``layer_norm_eps=1e-6`` as BEiT (transformers defaults to 1e-12).
"""
from typing import Dict

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor, nn
from transformers import (
    BeitBackbone,
    BeitConfig,
    BeitForImageClassification,
    BeitForMaskedImageModeling,
    BeitModel,
)

from beitlab.checkpoint.errors import CheckpointKeyError
from beitlab.checkpoint.layouts.hf import LAYOUT, beit_config_kwargs, to_file_names
from beitlab.models.heads.cls_head import ClsHead
from beitlab.models.heads.mim_head import MIMHead
from beitlab.utils import register_all_modules
from tests.checkpoint.test_layout_timm import backbone_for
from tests.models.test_beit_vit import official_index  # written from beit/modeling_finetune.py

TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            image_size=32, patch_size=8, layer_norm_eps=1e-6)
VOCAB, CLASSES = 50, 7
MIM = dict(TINY, vocab_size=VOCAB, use_mask_token=True, use_shared_relative_position_bias=True,
           use_absolute_position_embeddings=True)
ATOL = 1e-5


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if 'lambda' in name:
                p.copy_(0.1 + 0.05 * noise)
            elif 'layernorm' in name and name.endswith('weight'):
                p.copy_(1 + 0.1 * noise)
            elif 'relative_position_bias_table' in name:
                p.copy_(noise)
            else:
                p.copy_(0.1 * noise)
    return model.eval()


def inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 32, 32, generator=g)
    mask = torch.rand(2, 16, generator=g) < 0.4
    return x, mask


def assert_same(a: Tensor, b: Tensor) -> None:
    assert a.shape == b.shape
    assert (a - b).abs().max().item() < ATOL


def assert_bit_identical(a: Dict[str, Tensor], b: Dict[str, Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def load_strict(model: nn.Module, state: Dict[str, Tensor]) -> None:
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_masked_image_modeling_parity_both_ways() -> None:
    hf = randomize(BeitForMaskedImageModeling(BeitConfig(**MIM)))
    state, arch = LAYOUT.to_beitlab(hf.state_dict(), 'pretrain')
    assert arch['use_shared_rel_pos_bias'] and arch['use_abs_pos_emb'] and arch['with_mask_token']
    ours = nn.ModuleDict(dict(backbone=backbone_for(arch, out_type='raw'),
                              head=MIMHead(in_channels=64, vocab_size=VOCAB))).eval()
    load_strict(ours, state)
    x, mask = inputs()
    with torch.no_grad():
        expected = hf(pixel_values=x, bool_masked_pos=mask).logits           # [B, N, V]
        feats = ours.backbone.forward_features(x, mask)                       # [B, 1+N, D]
        assert_same(ours.head(feats[:, 1:]), expected)
        assert_same(ours.head(feats, mask), expected[mask])

    exported = LAYOUT.from_beitlab(ours.state_dict(), 'pretrain', arch)
    config = beit_config_kwargs(ours.state_dict(), 'pretrain', arch)
    assert {k: config[k] for k in MIM} == {**MIM, 'image_size': [32, 32]}
    fresh = BeitForMaskedImageModeling(BeitConfig(**config)).eval()
    load_strict(fresh, exported)
    assert_bit_identical(exported, hf.state_dict())
    with torch.no_grad():
        assert_same(fresh(pixel_values=x, bool_masked_pos=mask).logits, expected)


@pytest.mark.parametrize('mean_pooling', [True, False])
def test_classifier_parity_both_ways(mean_pooling: bool) -> None:
    register_all_modules()
    hf = randomize(BeitForImageClassification(BeitConfig(
        **TINY, num_labels=CLASSES, use_relative_position_bias=True,
        use_mean_pooling=mean_pooling)))
    state, arch = LAYOUT.to_beitlab(hf.state_dict(), 'classifier')
    assert ('backbone.fc_norm.weight' in state) == mean_pooling
    assert ('backbone.norm.weight' in state) != mean_pooling
    out_type = 'avg_featmap' if mean_pooling else 'cls_token'
    ours = nn.ModuleDict(dict(backbone=backbone_for(arch, out_type=out_type),
                              head=ClsHead(num_classes=CLASSES, in_channels=64))).eval()
    load_strict(ours, state)
    x, _ = inputs()
    with torch.no_grad():
        expected = hf(pixel_values=x).logits
        assert_same(ours.head(ours.backbone(x)), expected)

    exported = LAYOUT.from_beitlab(ours.state_dict(), 'classifier', arch)
    config = beit_config_kwargs(ours.state_dict(), 'classifier', arch)
    assert config['use_mean_pooling'] == mean_pooling and config['num_labels'] == CLASSES
    fresh = BeitForImageClassification(BeitConfig(**config)).eval()
    load_strict(fresh, exported)
    assert_bit_identical(exported, hf.state_dict())
    with torch.no_grad():
        assert_same(fresh(pixel_values=x).logits, expected)


def test_segmentation_backbone_features_both_ways() -> None:
    hf = randomize(BeitBackbone(BeitConfig(**TINY, use_relative_position_bias=True,
                                           use_absolute_position_embeddings=True,
                                           out_indices=[1, 2])))  # stage i = output of layer i-1
    state, arch = LAYOUT.to_beitlab(hf.state_dict(), 'classifier')
    assert not any(k.startswith('head.') for k in state)
    ours = nn.ModuleDict(dict(backbone=backbone_for(arch, out_type='featmap', out_indices=(0, 1),
                                                    final_norm=False))).eval()
    load_strict(ours, state)
    x, _ = inputs()
    with torch.no_grad():
        expected = hf(pixel_values=x).feature_maps                             # 2 x [B, D, 4, 4]
        for a, b in zip(ours.backbone(x), expected, strict=True):
            assert_same(a, b)

    exported = LAYOUT.from_beitlab(ours.state_dict(), 'classifier', arch)
    config = beit_config_kwargs(ours.state_dict(), 'classifier', arch)
    fresh = BeitBackbone(BeitConfig(**config, out_indices=[1, 2])).eval()
    load_strict(fresh, exported)
    assert_bit_identical(exported, hf.state_dict())
    with torch.no_grad():
        for a, b in zip(fresh(pixel_values=x).feature_maps, expected, strict=True):
            assert_same(a, b)
    # a bare BeitModel holds the same names without the 'beit.' prefix
    bare = BeitModel(BeitConfig(**config), add_pooling_layer=False)
    load_strict(bare, {k[len('beit.'):]: v for k, v in exported.items()})
    assert_bit_identical(LAYOUT.to_beitlab(bare.state_dict(), 'classifier')[0], state)


def file_names_mim(num_layers: int = 2) -> list:
    """The keys of a published ``microsoft/beit-*-pt22k`` file (MIM, shared relative position
    bias, no absolute positions), as transformers 4 named its modules
    (``modeling_beit.py``: ``BeitEmbeddings``, ``BeitEncoder.relative_position_bias``,
    ``BeitLayer`` with ``attention.attention.{query,key,value}``, ``attention.output.dense``,
    ``intermediate.dense``, ``output.dense``; ``BeitForMaskedImageModeling.layernorm`` and
    ``lm_head``) and as ``save_pretrained`` still writes them; the published files also hold
    the index buffer."""
    keys = ['beit.embeddings.cls_token', 'beit.embeddings.mask_token',
            'beit.embeddings.patch_embeddings.projection.weight',
            'beit.embeddings.patch_embeddings.projection.bias',
            'beit.encoder.relative_position_bias.relative_position_bias_table',
            'beit.encoder.relative_position_bias.relative_position_index']
    for i in range(num_layers):
        layer = f'beit.encoder.layer.{i}.'
        keys += [layer + s for s in (
            'lambda_1', 'lambda_2',
            'attention.attention.query.weight', 'attention.attention.query.bias',
            'attention.attention.key.weight',
            'attention.attention.value.weight', 'attention.attention.value.bias',
            'attention.output.dense.weight', 'attention.output.dense.bias',
            'layernorm_before.weight', 'layernorm_before.bias',
            'intermediate.dense.weight', 'intermediate.dense.bias',
            'output.dense.weight', 'output.dense.bias',
            'layernorm_after.weight', 'layernorm_after.bias')]
    return keys + ['layernorm.weight', 'layernorm.bias', 'lm_head.weight', 'lm_head.bias']


def hub_file_state(hf: nn.Module) -> Dict[str, Tensor]:
    """The state of a transformers 5 MIM model under the file names, written independently
    of the layout: layer by layer and name by name."""
    v5 = hf.state_dict()
    renames = {'attention.attention.query.': 'attention.q_proj.',
               'attention.attention.key.': 'attention.k_proj.',
               'attention.attention.value.': 'attention.v_proj.',
               'attention.output.dense.': 'attention.o_proj.',
               'intermediate.dense.': 'mlp.fc1.', 'output.dense.': 'mlp.fc2.'}
    state = {}
    for key in file_names_mim():
        if key.endswith('relative_position_index'):
            state[key] = official_index(4, 4)
            continue
        name = key.replace('beit.encoder.layer.', 'beit.layers.').replace(
            'beit.encoder.relative_position_bias.', 'beit.shared_position_bias.')
        for old, new in renames.items():
            if old in name:
                name = name.replace(old, new)
                break
        state[key] = v5[name]
    return state


def test_published_file_names_import(tmp_path) -> None:
    config = dict(MIM, use_absolute_position_embeddings=False)
    hf = randomize(BeitForMaskedImageModeling(BeitConfig(**config)))
    files = hub_file_state(hf)
    from_files, arch = LAYOUT.to_beitlab(files, 'pretrain')
    from_memory, _ = LAYOUT.to_beitlab(hf.state_dict(), 'pretrain')
    assert_bit_identical(from_files, from_memory)

    exported = LAYOUT.from_beitlab(from_files, 'pretrain', arch)
    named = to_file_names(exported)
    assert sorted(named) == sorted(k for k in file_names_mim() if 'index' not in k)
    # transformers 5 reads the file names (its conversion mapping) into its module names
    BeitConfig(**config).save_pretrained(tmp_path)
    save_file(dict(named), str(tmp_path / 'model.safetensors'), metadata={'format': 'pt'})
    loaded, info = BeitForMaskedImageModeling.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info
    assert_bit_identical(loaded.state_dict(), hf.state_dict())

    files['beit.encoder.relative_position_bias.relative_position_index'] = \
        official_index(4, 4).flip(1)
    with pytest.raises(ValueError, match='relative_position_index'):
        LAYOUT.to_beitlab(files, 'pretrain')


def test_keys_that_cannot_be_placed_are_named() -> None:
    hf = randomize(BeitForMaskedImageModeling(BeitConfig(**MIM)))
    state = dict(hf.state_dict())
    state['beit.fpn.fpn2.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointKeyError, match='beit.fpn.fpn2.weight') as err:
        LAYOUT.to_beitlab(state, 'pretrain')
    assert err.value.unknown == ['beit.fpn.fpn2.weight']
    del state['beit.fpn.fpn2.weight'], state['beit.layers.1.attention.k_proj.weight']
    with pytest.raises(CheckpointKeyError, match='k_proj') as err:
        LAYOUT.to_beitlab(state, 'pretrain')
    assert err.value.missing == ['beit.layers.1.attention.k_proj.weight']
    state = dict(hf.state_dict())
    del state['beit.layers.1.layernorm_after.bias']  # reported by the official layout, renamed
    with pytest.raises(CheckpointKeyError, match='beit.layers.1.layernorm_after.bias') as err:
        LAYOUT.to_beitlab(state, 'pretrain')
    assert err.value.missing == ['beit.layers.1.layernorm_after.bias']
    # a MIM model built with use_mean_pooling=False normalises twice
    state = dict(hf.state_dict(), **{'beit.layernorm.weight': torch.ones(64),
                                     'beit.layernorm.bias': torch.zeros(64)})
    with pytest.raises(CheckpointKeyError, match='one final norm'):
        LAYOUT.to_beitlab(state, 'pretrain')
    with pytest.raises(CheckpointKeyError, match='lm_head.weight'):
        LAYOUT.to_beitlab(hf.state_dict(), 'classifier')


def test_export_without_qv_biases_is_refused() -> None:
    hf = randomize(BeitForImageClassification(BeitConfig(**TINY, num_labels=CLASSES,
                                                         use_relative_position_bias=True)))
    state, arch = LAYOUT.to_beitlab(hf.state_dict(), 'classifier')
    state = {k: v for k, v in state.items() if not k.endswith(('q_bias', 'v_bias'))}
    with pytest.raises(CheckpointKeyError, match='q and v biases') as err:
        LAYOUT.from_beitlab(state, 'classifier', dict(arch, qv_bias=False))
    assert 'blocks.0.attn.q_bias' in err.value.missing


def test_detect() -> None:
    hf = BeitForImageClassification(BeitConfig(**TINY, num_labels=CLASSES))
    assert LAYOUT.detect(hf.state_dict())
    assert LAYOUT.detect(hf.beit.state_dict())
    state, _ = LAYOUT.to_beitlab(hf.state_dict(), 'classifier')
    assert not LAYOUT.detect(state)
