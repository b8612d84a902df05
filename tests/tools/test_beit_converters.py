"""Official BEiT <-> beitlab checkpoint converters (tools/model_converters/beit*_*.py)."""
import importlib.util
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from beitlab.checkpoint.layouts.official import CheckpointKeyError, beitlab_to_official, official_to_beitlab
from beitlab.models.backbones.beit_vit import BEiTViT
from tests.tools_helpers import run_tool

TOOLS = Path(__file__).resolve().parents[2] / 'tools' / 'model_converters'
TINY = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_index(wh: int, ww: int) -> torch.Tensor:
    """Official BEiT ``relative_position_index`` (re-derived here, not imported)."""
    n = (2 * wh - 1) * (2 * ww - 1) + 3
    coords = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing='ij')
    coords = torch.stack(coords).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += wh - 1
    rel[:, :, 1] += ww - 1
    rel[:, :, 0] *= 2 * ww - 1
    index = torch.zeros((wh * ww + 1, ) * 2, dtype=torch.int64)
    index[1:, 1:] = rel.sum(-1)
    index[0, 0:] = n - 3
    index[0:, 0] = n - 2
    index[0, 0] = n - 1
    return index


def official_state_dict(per_layer: bool = False, seed: int = 0) -> 'OrderedDict[str, torch.Tensor]':
    """An official pre-training state dict (random values, official names and buffers)."""
    g = torch.Generator().manual_seed(seed)
    D, L, F, V, grid = 64, 2, 128, 50, 8
    n_rel = (2 * grid - 1)**2 + 3
    sd = OrderedDict()
    sd['cls_token'] = torch.randn(1, 1, D, generator=g)
    sd['mask_token'] = torch.randn(1, 1, D, generator=g)
    sd['pos_embed'] = torch.randn(1, 1 + grid * grid, D, generator=g)
    sd['patch_embed.proj.weight'] = torch.randn(D, 3, 4, 4, generator=g)
    sd['patch_embed.proj.bias'] = torch.randn(D, generator=g)
    if not per_layer:
        sd['rel_pos_bias.relative_position_bias_table'] = torch.randn(n_rel, 2, generator=g)
        sd['rel_pos_bias.relative_position_index'] = official_index(grid, grid)
    for i in range(L):
        p = f'blocks.{i}.'
        sd[p + 'gamma_1'] = torch.randn(D, generator=g)
        sd[p + 'gamma_2'] = torch.randn(D, generator=g)
        for name in ('norm1', 'norm2'):
            sd[p + name + '.weight'] = torch.randn(D, generator=g)
            sd[p + name + '.bias'] = torch.randn(D, generator=g)
        sd[p + 'attn.q_bias'] = torch.randn(D, generator=g)
        sd[p + 'attn.v_bias'] = torch.randn(D, generator=g)
        if per_layer:
            sd[p + 'attn.relative_position_bias_table'] = torch.randn(n_rel, 2, generator=g)
            sd[p + 'attn.relative_position_index'] = official_index(grid, grid)
        sd[p + 'attn.qkv.weight'] = torch.randn(3 * D, D, generator=g)
        sd[p + 'attn.proj.weight'] = torch.randn(D, D, generator=g)
        sd[p + 'attn.proj.bias'] = torch.randn(D, generator=g)
        sd[p + 'mlp.fc1.weight'] = torch.randn(F, D, generator=g)
        sd[p + 'mlp.fc1.bias'] = torch.randn(F, generator=g)
        sd[p + 'mlp.fc2.weight'] = torch.randn(D, F, generator=g)
        sd[p + 'mlp.fc2.bias'] = torch.randn(D, generator=g)
    sd['norm.weight'] = torch.randn(D, generator=g)
    sd['norm.bias'] = torch.randn(D, generator=g)
    sd['lm_head.weight'] = torch.randn(V, D, generator=g)
    sd['lm_head.bias'] = torch.randn(V, generator=g)
    return sd


@pytest.mark.parametrize('per_layer', [False, True])
def test_round_trip_is_bit_identical_and_loads(tmp_path, per_layer):
    official = official_state_dict(per_layer)
    src, mid, back = tmp_path / 'official.pth', tmp_path / 'beitlab.pth', tmp_path / 'back.pth'
    torch.save({'model': official}, src)
    assert load_tool('beit_official_to_beitlab').main([str(src), str(mid)]) == 0
    assert load_tool('beitlab_to_beit_official').main([str(mid), str(back)]) == 0

    converted = torch.load(mid, weights_only=True)  # plain types only
    sd, meta = converted['state_dict'], converted['meta']
    assert not any(k.endswith('relative_position_index') for k in sd)
    assert sd['head.fc.weight'].shape == (50, 64) and 'backbone.cls_token' in sd
    assert meta['vocab_size'] == 50 and meta['backbone']['grid'] == [8, 8]
    assert meta['backbone']['arch'] == dict(TINY)

    exported = torch.load(back, weights_only=True)['model']
    assert set(exported) == set(official)
    for k, v in official.items():
        assert exported[k].dtype == v.dtype and torch.equal(exported[k], v), k

    # the beitlab state dict loads strictly into BEiTViT and a linear head
    backbone = BEiTViT(arch=TINY, img_size=32, patch_size=4, use_shared_rel_pos_bias=not per_layer,
                       use_rel_pos_bias=per_layer, layer_scale_init_value=0.1)
    backbone.load_state_dict({k[9:]: v for k, v in sd.items() if k.startswith('backbone.')})
    nn.Linear(64, 50).load_state_dict({'weight': sd['head.fc.weight'], 'bias': sd['head.fc.bias']})


def test_unknown_and_missing_keys_are_named(tmp_path):
    official = official_state_dict()
    official['blocks.0.attn.k_bias'] = torch.zeros(64)
    official['decoder.weight'] = torch.zeros(3)
    del official['blocks.1.mlp.fc2.bias'], official['blocks.0.gamma_2'], official['mask_token']
    with pytest.raises(CheckpointKeyError) as info:
        official_to_beitlab(official)
    err = info.value
    assert err.unknown == ['blocks.0.attn.k_bias', 'decoder.weight']
    assert sorted(err.missing) == ['blocks.0.gamma_2', 'blocks.1.mlp.fc2.bias', 'mask_token']
    for name in err.unknown + err.missing:
        assert name in str(err)
    # allow flags: unknown keys dropped, missing ones tolerated
    sd, meta = official_to_beitlab(official, allow_missing=True, allow_unknown=True)
    assert 'backbone.decoder.weight' not in sd and meta['dropped_unknown_keys'] == err.unknown

    src = tmp_path / 'bad.pth'
    torch.save({'model': official}, src)
    with pytest.raises(CheckpointKeyError, match='blocks.0.attn.k_bias'):
        load_tool('beit_official_to_beitlab').main([str(src), str(tmp_path / 'o.pth')])
    # on the command line: one error line naming the keys, exit status 1, no traceback
    proc = run_tool('model_converters/beit_official_to_beitlab.py', src, tmp_path / 'o.pth',
                    timeout=120, check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if 'error:' in line]
    assert len(errors) == 1 and errors[0].startswith('beit_official_to_beitlab.py: error:')
    assert 'blocks.0.attn.k_bias' in errors[0]
    torch.save({'weights': official}, src)
    with pytest.raises(KeyError, match="'model'.*weights"):
        load_tool('beit_official_to_beitlab').main([str(src), str(tmp_path / 'o.pth')])


def test_export_skips_tokenizer_and_names_unknown_or_missing():
    sd, meta = official_to_beitlab(official_state_dict())
    sd['target_generator.tokenizer.encoder.weight'] = torch.zeros(2)
    assert 'tokenizer' not in ''.join(beitlab_to_official(sd, meta))
    sd['neck.proj.weight'] = torch.zeros(2)
    del sd['backbone.blocks.1.attn.proj.weight']
    with pytest.raises(CheckpointKeyError,
                       match=r"unknown keys \['neck.proj.weight'\].*"
                       r"missing keys \['backbone.blocks.1.attn.proj.weight'\]"):
        beitlab_to_official(sd, meta)


def test_index_buffer_with_wrong_layout_is_rejected():
    official = official_state_dict()
    official['rel_pos_bias.relative_position_index'] = official_index(8, 8).T.contiguous()
    with pytest.raises(ValueError, match='relative_position_index'):
        official_to_beitlab(official)


def test_command_line(tmp_path):
    src, dst = tmp_path / 'official.pth', tmp_path / 'beitlab.pth'
    torch.save({'model': official_state_dict()}, src)
    proc = run_tool('model_converters/beit_official_to_beitlab.py', src, dst, timeout=120)
    assert 'vocab_size 50' in proc.stdout and dst.is_file()
