"""``tools/model_converters/convert.py``: official <-> beitlab round trips are bit-identical for
pre-training and classifier checkpoints (``.pth`` and ``.safetensors``), the kind is read from
the keys and said, conversion is strict, the input is never overwritten, and the architecture
written to ``meta`` is checked when the file is loaded as a pre-trained backbone."""
import importlib.util
from collections import OrderedDict
from typing import Dict

import pytest
import torch
from torch import Tensor

from beitlab.checkpoint import BackboneMetaMismatchError, CheckpointKeyError, load_checkpoint_file
from beitlab.checkpoint.pretrained import load_pretrained_backbone
from beitlab.models.backbones.beit_vit import BEiTViT
from tests.tools.test_beit_converters import official_state_dict
from tests.tools_helpers import REPO_ROOT, run_tool

TINY = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)


def load_convert():
    path = REPO_ROOT / 'tools' / 'model_converters' / 'convert.py'
    spec = importlib.util.spec_from_file_location('convert_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONVERT = load_convert()


def official_classifier_state() -> 'OrderedDict[str, Tensor]':
    """The official fine-tuning ``VisionTransformer``: per-layer tables with their index, mean
    pooling (``fc_norm``, no final ``norm``), ``head``, no ``mask_token``."""
    state = official_state_dict(per_layer=True, seed=1)
    for key in ('mask_token', 'norm.weight', 'norm.bias', 'lm_head.weight', 'lm_head.bias'):
        del state[key]
    g = torch.Generator().manual_seed(2)
    state['fc_norm.weight'] = torch.randn(64, generator=g)
    state['fc_norm.bias'] = torch.randn(64, generator=g)
    state['head.weight'] = torch.randn(10, 64, generator=g)
    state['head.bias'] = torch.randn(10, generator=g)
    return state


def assert_identical(got: Dict[str, Tensor], want: Dict[str, Tensor], ordered: bool = True) -> None:
    """Same names (in the same order: ``.safetensors`` keeps none), dtypes and bits."""
    assert (list(got) if ordered else sorted(got)) == (list(want) if ordered else sorted(want))
    for k, v in want.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k


@pytest.mark.parametrize('kind', ['pretrain', 'classifier'])
@pytest.mark.parametrize('middle', ['beitlab.pth', 'beitlab.safetensors'])
def test_official_beitlab_official_is_bit_identical(tmp_path, capsys, kind, middle) -> None:
    official = official_state_dict() if kind == 'pretrain' else official_classifier_state()
    src, mid, back = tmp_path / 'official.pth', tmp_path / middle, tmp_path / 'back.pth'
    torch.save({'model': official}, src)
    assert CONVERT.main([str(src), str(mid), '--from', 'official', '--to', 'beitlab']) == 0
    out = capsys.readouterr().out
    assert f'official {kind} checkpoint (kind read from its keys)' in out
    checked = 1 if kind == 'pretrain' else 2  # shared table, or one per layer
    assert f'checked {checked} relative_position_index buffers' in out
    assert CONVERT.main([str(mid), str(back), '--from', 'beitlab', '--to', 'official']) == 0
    assert f'beitlab {kind} checkpoint' in capsys.readouterr().out
    exported = torch.load(back, weights_only=True)
    assert list(exported) == ['model']
    assert_identical(exported['model'], official, ordered=middle.endswith('.pth'))

    converted = load_checkpoint_file(mid)
    state, meta = converted['state_dict'], converted['meta']
    assert not any(k.endswith('relative_position_index') for k in state)
    assert ('backbone.mask_token' in state) == (kind == 'pretrain')
    assert meta['kind'] == kind and meta['converted_from'] == 'official'
    assert meta['backbone']['arch'] == TINY and meta['backbone']['grid'] == [8, 8]
    assert meta['backbone']['patch_size'] == 4


def test_classifier_loads_strictly_into_beitvit_and_official_to_official(tmp_path) -> None:
    official = official_classifier_state()
    src, mid = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    torch.save({'model': official}, src)
    CONVERT.main([str(src), str(mid), '--from', 'official', '--to', 'beitlab'])
    state = torch.load(mid, weights_only=True)['state_dict']
    backbone = BEiTViT(arch=TINY, img_size=32, patch_size=4, use_rel_pos_bias=True,
                       layer_scale_init_value=0.1, with_mask_token=False, out_type='avg_featmap')
    backbone.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith('backbone.')},
                             strict=True)
    # a foreign layout to another one goes through beitlab; .safetensors output is flat
    flat = tmp_path / 'again.safetensors'
    CONVERT.main([str(src), str(flat), '--from', 'official', '--to', 'official'])
    assert_identical(load_checkpoint_file(flat), official, ordered=False)


def test_strict_refusals_and_the_input_is_never_overwritten(tmp_path) -> None:
    official = official_state_dict()
    official['blocks.0.attn.k_bias'] = torch.zeros(64)
    src = tmp_path / 'official.pth'
    torch.save({'model': official}, src)
    before = src.read_bytes()
    with pytest.raises(CheckpointKeyError) as info:
        CONVERT.main([str(src), str(tmp_path / 'o.pth'), '--from', 'official', '--to', 'beitlab',
                      '--kind', 'pretrain'])
    assert info.value.unknown == ['blocks.0.attn.k_bias'] and 'blocks.0.attn.k_bias' in str(info.value)
    with pytest.raises(CheckpointKeyError, match='fits no kind.*blocks.0.attn.k_bias'):
        CONVERT.main([str(src), str(tmp_path / 'o.pth'), '--from', 'official', '--to', 'beitlab'])
    for force in ([], ['--force']):
        with pytest.raises(ValueError, match='is the input'):
            CONVERT.main([str(src), str(src), '--from', 'official', '--to', 'official', *force])
    assert src.read_bytes() == before
    existing = tmp_path / 'existing.pth'
    existing.write_bytes(b'keep')
    with pytest.raises(FileExistsError, match='pass --force'):
        CONVERT.main([str(src), str(existing), '--from', 'official', '--to', 'beitlab'])
    assert existing.read_bytes() == b'keep' and not (tmp_path / 'o.pth').exists()
    with pytest.raises(ValueError, match='dalle_to_beitlab.py.*extract_tokenizer.py'):
        CONVERT.main([str(src), str(tmp_path / 't.pth'), '--from', 'beitlab', '--to', 'beitlab',
                      '--kind', 'tokenizer'])
    tokenizer = tmp_path / 'tok.pth'
    torch.save({'state_dict': {'tokenizer.encoder.weight': torch.zeros(2)}}, tokenizer)
    with pytest.raises(ValueError, match='holds tokenizer weights.*extract_tokenizer.py'):
        CONVERT.main([str(tokenizer), str(tmp_path / 't.pth'), '--from', 'beitlab', '--to',
                      'official'])


def test_a_converted_file_loaded_into_another_architecture_names_both(tmp_path) -> None:
    src, mid = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    torch.save({'model': official_state_dict()}, src)
    CONVERT.main([str(src), str(mid), '--from', 'official', '--to', 'beitlab'])
    fits = BEiTViT(arch=TINY, img_size=32, patch_size=4, use_rel_pos_bias=True,
                   layer_scale_init_value=0.1, with_mask_token=False)
    load_pretrained_backbone(fits, str(mid))
    deeper = BEiTViT(arch=dict(TINY, num_layers=3), img_size=32, patch_size=4)
    with pytest.raises(BackboneMetaMismatchError) as info:
        load_pretrained_backbone(deeper, str(mid))
    assert 'num_layers=2' in str(info.value) and 'num_layers=3' in str(info.value)
    assert info.value.differences == {'num_layers': (2, 3)}


def test_command_line_prints_the_tensors_and_one_error_line(tmp_path) -> None:
    src, dst = tmp_path / 'official.pth', tmp_path / 'ours.safetensors'
    torch.save({'model': official_state_dict()}, src)
    proc = run_tool('model_converters/convert.py', src, dst, '--from', 'official', '--to',
                    'beitlab', timeout=120)
    lines = proc.stdout.splitlines()
    assert any(line.split() == ['name', '|', 'shape', '|', 'dtype'] for line in lines)
    assert any(line.startswith('backbone.cls_token') and '[1, 1, 64]' in line for line in lines)
    state = load_checkpoint_file(dst)['state_dict']
    assert sum(line.startswith(('backbone.', 'head.')) for line in lines) == len(state) == 40
    short = CONVERT.tensor_table(state, limit=10)  # a long table: its start, then a count
    assert len(short) == 1 + 5 + 1 and short[-1].startswith('... and 35 more: 40 tensors')
    assert 'nothing resized or copied' in proc.stdout and dst.is_file()
    proc = run_tool('model_converters/convert.py', src, dst, '--from', 'official', '--to',
                    'beitlab', timeout=120, check=False)
    errors = [line for line in proc.stderr.splitlines() if 'error:' in line]
    assert proc.returncode == 1 and len(errors) == 1 and 'pass --force' in errors[0]
