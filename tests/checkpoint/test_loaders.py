"""Every loader reads an official ``{'model': ...}`` file and a ``.safetensors`` file the same way:
the pre-trained backbone of fine-tuning, ``init_cfg=dict(type='Pretrained')``, ``load_from``
(the strict Runner), the frozen VQ-KD teacher and tokenizer weights; a converted file whose
``meta['backbone']`` contradicts the target is one error naming both values."""
from pathlib import Path
from typing import Dict

import pytest
import torch
from mmengine.model import BaseModel
from safetensors.torch import save_file
from torch import Tensor, nn

from beitlab.checkpoint import (
    BackboneMetaMismatchError,
    CorruptCheckpointError,
    load_checkpoint_file,
    save_checkpoint_file,
)
from beitlab.checkpoint.pretrained import load_pretrained_backbone
from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.ops.relative_position import build_relative_position_index
from beitlab.utils import register_all_modules

TINY = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
PRETRAIN = dict(arch=TINY, img_size=32, patch_size=4, use_shared_rel_pos_bias=True,
                layer_scale_init_value=0.1)


def pretrained_backbone() -> BEiTViT:
    """A pre-training backbone (shared relative bias, layer scale) with random weights."""
    torch.manual_seed(0)
    net = BEiTViT(**PRETRAIN)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    return net


def official_state(net: BEiTViT) -> Dict[str, Tensor]:
    """Its official pre-training state dict: bare names, index buffer, ``lm_head``."""
    state = dict(net.state_dict())
    state['rel_pos_bias.relative_position_index'] = build_relative_position_index(net.grid)
    state['lm_head.weight'] = torch.randn(16, 32)
    state['lm_head.bias'] = torch.randn(16)
    return state


def beitlab_state(net: BEiTViT) -> Dict[str, Tensor]:
    state = {f'backbone.{k}': v for k, v in net.state_dict().items()}
    state['head.fc.weight'] = torch.randn(16, 32)
    state['head.fc.bias'] = torch.randn(16)
    return state


@pytest.fixture(scope='module')
def files(tmp_path_factory) -> Dict[str, Path]:
    """The same weights as an official .pth, an official .safetensors (flat, as timm ships)
    and a beitlab .safetensors (with its meta)."""
    net = pretrained_backbone()
    folder = tmp_path_factory.mktemp('ckpts')
    out = dict(official=folder / 'official.pth', official_st=folder / 'official.safetensors',
               beitlab_st=folder / 'beitlab.safetensors')
    torch.save({'model': official_state(net)}, out['official'])
    save_file(official_state(net), str(out['official_st']))
    save_checkpoint_file({'state_dict': beitlab_state(net), 'meta': {'kind': 'pretrain'}},
                         out['beitlab_st'])
    return out


FILES = ('official', 'official_st', 'beitlab_st')


def assert_same_backbone(got: torch.nn.Module, want: BEiTViT) -> None:
    for k, v in want.state_dict().items():
        assert torch.equal(got.state_dict()[k], v), k


def test_safetensors_files_read_back_with_their_meta(files) -> None:
    flat = load_checkpoint_file(files['official_st'])
    assert 'lm_head.weight' in flat and 'meta' not in flat
    ours = load_checkpoint_file(files['beitlab_st'])
    assert ours['meta'] == {'kind': 'pretrain'} and 'backbone.cls_token' in ours['state_dict']


def test_a_corrupt_safetensors_file_is_named(tmp_path, files) -> None:
    bad = tmp_path / 'cut.safetensors'
    bad.write_bytes(files['beitlab_st'].read_bytes()[:200])
    with pytest.raises(CorruptCheckpointError, match=r"cut\.safetensors.*not a safetensors file"):
        load_checkpoint_file(bad)


def test_without_the_safetensors_package_the_error_names_the_file(files, monkeypatch) -> None:
    import sys
    for name in ('safetensors', 'safetensors.torch'):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"beitlab\.safetensors.*pip install safetensors"):
        load_checkpoint_file(files['beitlab_st'])


@pytest.mark.parametrize('name', FILES)
def test_fine_tuning_backbone(files, name) -> None:
    src = pretrained_backbone()
    dst = BEiTViT(arch=TINY, img_size=32, patch_size=4, use_rel_pos_bias=True,
                  layer_scale_init_value=0.1, with_mask_token=False)
    report = load_pretrained_backbone(dst, files[name])
    shared = src.rel_pos_bias.relative_position_bias_table
    for block, block_src in zip(dst.blocks, src.blocks):
        assert torch.equal(block.attn.relative_position_bias_table, shared)
        assert torch.equal(block.mlp.fc1.weight, block_src.mlp.fc1.weight)
    assert torch.equal(dst.pos_embed, src.pos_embed)
    assert 'mask_token' in report['dropped_keys'] and len(report['copied_keys']) == 2


@pytest.mark.parametrize('name', FILES)
def test_init_cfg_pretrained(files, name) -> None:
    register_all_modules()  # the strict 'Pretrained' initializer and the safe loader
    net = BEiTViT(**PRETRAIN, init_cfg=dict(type='Pretrained', checkpoint=str(files[name]),
                                            prefix='backbone.'))
    net.init_weights()
    assert_same_backbone(net, pretrained_backbone())


class MIMWeights(BaseModel):
    """The weights of a BEiT model: ``backbone.*`` and ``head.fc.*``."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = BEiTViT(**PRETRAIN)
        self.head = nn.Module()
        self.head.fc = nn.Linear(32, 16)

    def forward(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - never run here
        raise NotImplementedError


@pytest.mark.parametrize('name', FILES)
def test_load_from(files, name, tmp_path) -> None:
    register_all_modules()
    from beitlab.engine.runner import BeitlabRunner
    model = MIMWeights()
    runner = BeitlabRunner(model=model, work_dir=str(tmp_path), default_scope='beitlab',
                           experiment_name=f'load_from_{name}')
    runner.load_checkpoint(str(files[name]))
    assert_same_backbone(model.backbone, pretrained_backbone())


@pytest.mark.parametrize('name', FILES)
def test_frozen_vqkd_teacher(files, name) -> None:
    register_all_modules()
    from beitlab.registry import TOKENIZERS
    tokenizer = TOKENIZERS.build(dict(
        type='VQKD', encoder=dict(arch=TINY, img_size=32, patch_size=4),
        teacher=dict(PRETRAIN, out_type='featmap'), teacher_checkpoint=str(files[name]),
        vocab_size=16, embed_dim=8))
    assert_same_backbone(tokenizer.teacher, pretrained_backbone())
    assert not any(p.requires_grad for p in tokenizer.teacher.parameters())


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_tokenizer_weights(tmp_path, suffix) -> None:
    from beitlab.models.tokenizers.dvae import DVAE
    torch.manual_seed(0)
    trained = DVAE(vocab_size=16, hidden_channels=8, embed_dim=4)
    state = {f'tokenizer.{k}': v for k, v in trained.state_dict().items()}
    path = tmp_path / f'dvae{suffix}'
    if suffix == '.pth':
        torch.save({'model': state}, path)  # the official wrapper
    else:
        save_file(state, str(path))
    loaded = DVAE(vocab_size=16, hidden_channels=8, embed_dim=4, checkpoint=str(path))
    for k, v in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_a_recorded_backbone_that_contradicts_the_target_is_one_error(tmp_path) -> None:
    path = tmp_path / 'converted.pth'
    meta = {'backbone': {'arch': dict(TINY), 'patch_size': 4, 'in_channels': 3}}
    torch.save({'state_dict': beitlab_state(pretrained_backbone()), 'meta': meta}, path)
    wide = BEiTViT(arch=dict(TINY, embed_dims=48), img_size=32, patch_size=8)
    with pytest.raises(BackboneMetaMismatchError) as info:
        load_pretrained_backbone(wide, str(path))
    message = str(info.value)
    assert 'embed_dims=32, patch_size=4' in message and 'embed_dims=48, patch_size=8' in message
    assert info.value.differences == {'embed_dims': (32, 48), 'patch_size': (4, 8)}
    # the same check for a frozen network and init_cfg, which load under 'backbone.' too
    from beitlab.utils.frozen_network import build_frozen_network
    with pytest.raises(BackboneMetaMismatchError, match='embed_dims=48'):
        build_frozen_network(wide, str(path))


def test_a_registered_layout_is_converted_even_under_the_backbone_prefix(monkeypatch) -> None:
    """A layout whose names share ``backbone.`` with beitlab's (as mmpretrain's do) is still
    converted: the converted names fit the model better than its own."""
    from beitlab.checkpoint import layouts
    from beitlab.checkpoint.layouts.base import Layout
    from beitlab.checkpoint.model_state import model_state_dict

    def to_beitlab(state, kind):
        return {k.replace('backbone.layers.', 'backbone.blocks.'): v for k, v in state.items()}, {}

    renamed = Layout(name='renamed', description='blocks called layers',
                     detect=lambda state: any(k.startswith('backbone.layers.') for k in state),
                     to_beitlab=to_beitlab, from_beitlab=lambda state, kind, arch: dict(state))
    monkeypatch.setitem(layouts.LAYOUTS, 'renamed', renamed)
    src = pretrained_backbone()
    theirs = {k.replace('backbone.blocks.', 'backbone.layers.'): v
              for k, v in beitlab_state(src).items()}
    model = MIMWeights()
    result = model_state_dict({'state_dict': theirs}, model_keys=model.state_dict().keys())
    assert result.layout == 'renamed' and set(result.state) == set(model.state_dict())
    dst = BEiTViT(**PRETRAIN)
    load_pretrained_backbone(dst, {'state_dict': theirs})
    assert_same_backbone(dst, src)
