"""Strict loading: one table of every difference (after the loaders' adaptations), explicit
allowances, the strict ``init_cfg=dict(type='Pretrained')``, tokenizer / teacher /
``BEiTPretrained`` / ``pretrained=`` checkpoints, the optimizer-state check of a resume, and
every producer -> consumer pair of the configs still loading (and refusing a checkpoint with
one tensor taken out)."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from beitlab.checkpoint.pretrained import load_pretrained_backbone
from beitlab.checkpoint.pretrained_init import StrictPretrainedInit
from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.models.tokenizers.base import TokenizerCheckpointMismatchError
from beitlab.models.tokenizers.dvae import DVAE
from beitlab.utils import register_all_modules
from beitlab.utils.cli import hint_lines, one_line_message
from beitlab.utils.optimizer_state import OptimizerStateError, check_optimizer_state
from beitlab.utils.strict_load import (
    MAX_TABLE_ROWS,
    Allowance,
    StrictLoadError,
    load_state_dict_strict,
)

REPO = Path(__file__).resolve().parents[2]
TINY = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)


def _rows(err: StrictLoadError) -> list:
    """The table rows of an error as (difference, key, checkpoint, model) tuples."""
    lines = err.table.splitlines()
    assert [c.strip() for c in lines[0].split('|')] == ['difference', 'key', 'checkpoint', 'model']
    return [tuple(c.strip() for c in line.split('|')) for line in lines[1:]
            if not line.startswith('...')]


# ----------------------------------------------------------------------------- the function
def test_one_table_of_every_difference_then_each_allowed_explicitly() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    state = model.state_dict()
    state['0.weight'] = torch.zeros(3, 5)       # another shape
    del state['1.bias']                          # missing
    state['2.extra'] = torch.zeros(7)            # unexpected
    with pytest.raises(StrictLoadError) as info:
        load_state_dict_strict(model, state, 'ckpt.pth')
    err = info.value
    assert isinstance(err, RuntimeError)
    assert one_line_message(err) == ("checkpoint 'ckpt.pth' does not fit Sequential: "
                                     '1 shape mismatch, 1 missing key, 1 unexpected key')
    assert _rows(err) == [('shape', '0.weight', '[3, 5]', '[3, 4]'),
                          ('missing', '1.bias', '-', '[3]'),
                          ('unexpected', '2.extra', '[7]', '-')]
    assert err.missing_keys == ['1.bias'] and err.unexpected_keys == ['2.extra']
    assert [tuple(m) for m in err.shape_mismatches] == [('0.weight', (3, 5), (3, 4))]
    # the CLI prints the header and each row on a line of its own
    assert hint_lines(err)[1] == 'shape | 0.weight | [3, 5] | [3, 4]'

    # each difference allowed (a glob, a regex, an exact key): loads, the rest is copied
    fresh = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    before = fresh[0].weight.detach().clone()
    report = load_state_dict_strict(fresh, state, 'ckpt.pth', allow_missing=['1.*'],
                                    allow_unexpected=['re:2\\.ex.*'],
                                    allow_shape_mismatch=['0.weight'])
    assert report.missing_keys == ['1.bias'] and report.unexpected_keys == ['2.extra']
    assert torch.equal(fresh[0].weight, before)  # the mismatched tensor was not loaded
    assert torch.equal(fresh[0].bias, state['0.bias'])
    assert torch.equal(fresh[1].weight, state['1.weight'])
    # an allowance of one kind does not cover another kind
    with pytest.raises(StrictLoadError, match='1 missing key'):
        load_state_dict_strict(fresh, state, 'ckpt.pth', allow_unexpected=['*'],
                               allow_shape_mismatch=['*'])


def test_table_stops_after_max_rows() -> None:
    model = nn.ModuleList(nn.Linear(2, 2) for _ in range(15))  # 30 tensors
    with pytest.raises(StrictLoadError) as info:
        load_state_dict_strict(model, {}, 'empty.pth')
    lines = info.value.table.splitlines()
    assert len(lines) == 1 + MAX_TABLE_ROWS + 1
    assert lines[-1] == f'... and {30 - MAX_TABLE_ROWS} more'
    assert '30 missing keys' in info.value.message


def test_allowance_config_is_validated() -> None:
    assert Allowance.from_config(None, 'load_from_allow') == Allowance()
    assert Allowance.from_config(dict(missing='head.*'), 'k').missing == ('head.*', )
    with pytest.raises(KeyError, match=r"load_from_allow has unknown keys \['mising'\]"):
        Allowance.from_config(dict(mising=['head.*']), 'load_from_allow')
    with pytest.raises(ValueError, match='not a valid regular expression'):
        Allowance.from_config(dict(unexpected=['re:(']), 'load_from_allow')
    with pytest.raises(TypeError, match='list of key patterns'):
        Allowance.from_config(dict(missing=[3]), 'load_from_allow')


def test_comparison_runs_after_the_backbone_adaptation() -> None:
    """A shared table (another grid) lands in every per-layer table: no difference reported;
    a pos_embed that cannot be interpolated (not square) is reported with both shapes."""
    torch.manual_seed(0)
    src = BEiTViT(arch=TINY, img_size=16, patch_size=4, use_shared_rel_pos_bias=True)
    dst = BEiTViT(arch=TINY, img_size=32, patch_size=4, use_rel_pos_bias=True)
    report = load_state_dict_strict(dst, src.state_dict(), 'mim.pth')
    assert report.missing_keys == [] and report.unexpected_keys == []
    state = src.state_dict()
    state['pos_embed'] = torch.zeros(1, 1 + 12, 64)  # 12 patches: no square grid
    with pytest.raises(StrictLoadError) as info:
        load_state_dict_strict(BEiTViT(arch=TINY, img_size=32, patch_size=4, use_rel_pos_bias=True),
                               state, 'mim.pth')
    assert _rows(info.value) == [('shape', 'pos_embed', '[1, 13, 64]', '[1, 65, 64]')]


# ----------------------------------------------------------------------------- init_cfg Pretrained
def test_init_cfg_pretrained_is_strict_and_allowances_are_explicit(tmp_path) -> None:
    register_all_modules()
    from mmengine.registry import WEIGHT_INITIALIZERS
    from mmseg.registry import WEIGHT_INITIALIZERS as MMSEG_INITIALIZERS
    assert WEIGHT_INITIALIZERS.get('Pretrained') is StrictPretrainedInit
    with DefaultScope.overwrite_default_scope('mmseg'):
        assert MMSEG_INITIALIZERS.get('Pretrained') is StrictPretrainedInit

    torch.manual_seed(0)
    src = BEiTViT(arch=TINY, img_size=16, patch_size=4)
    state = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    state['backbone.patch_embed.proj.weight'] = torch.zeros(64, 3, 2, 2)  # patch 2 instead of 4
    path = tmp_path / 'mim.pth'
    torch.save({'state_dict': state}, path)

    def build(**allow):
        m = BEiTViT(arch=TINY, img_size=16, patch_size=4,
                    init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.',
                                  **allow))
        m.init_weights()
        return m

    with pytest.raises(StrictLoadError) as info:
        build()
    assert str(path) in info.value.message
    assert _rows(info.value) == [('shape', 'patch_embed.proj.weight', '[64, 3, 2, 2]',
                                  '[64, 3, 4, 4]')]
    assert any("allow_shape_mismatch=['patch_embed.proj.weight']" in h
               for h in info.value.hints)
    model = build(allow_shape_mismatch=['patch_embed.proj.weight'])
    torch.testing.assert_close(model.blocks[1].mlp.fc2.weight, src.blocks[1].mlp.fc2.weight)


# ----------------------------------------------------------------------------- tokenizers, teacher
def test_tokenizer_checkpoint_with_a_missing_key_names_the_file(tmp_path) -> None:
    trained = DVAE(vocab_size=16, hidden_channels=8, embed_dim=4)
    state = {f'tokenizer.{k}': v for k, v in trained.state_dict().items()}
    key = next(k for k in state if k.endswith('quantizer.embedding.weight'))
    del state[key]
    path = tmp_path / 'dvae.pth'
    torch.save({'state_dict': state, 'meta': {}}, path)
    with pytest.raises(TokenizerCheckpointMismatchError) as info:
        DVAE(vocab_size=16, hidden_channels=8, embed_dim=4, checkpoint=str(path))
    err = info.value
    assert isinstance(err, StrictLoadError) and isinstance(err, ValueError)
    assert str(path) in err.message and 'DVAE (vocab_size=16)' in err.message
    assert _rows(err) == [('missing', 'quantizer.embedding.weight', '-', '[16, 4]')]


def test_vqkd_teacher_checkpoint_of_another_width_raises(tmp_path) -> None:
    register_all_modules()
    from beitlab.registry import TOKENIZERS
    teacher = dict(arch=TINY, img_size=32, patch_size=4, out_type='featmap')
    wide = BEiTViT(**dict(teacher, arch=dict(TINY, embed_dims=96, num_heads=3)))
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in wide.state_dict().items()}}, path)
    with pytest.raises(StrictLoadError) as info:
        TOKENIZERS.build(dict(type='VQKD', encoder=dict(arch=TINY, img_size=32, patch_size=4),
                              teacher=teacher, teacher_checkpoint=str(path), vocab_size=16,
                              embed_dim=8))
    assert 'VQKD teacher' in info.value.message and str(path) in info.value.message
    assert ('shape', 'cls_token', '[1, 1, 96]', '[1, 1, 64]') in _rows(info.value)


# ----------------------------------------------------------------------------- transfer loaders
def _mim_checkpoint(path: Path, **backbone) -> BEiTViT:
    """A beitlab MIM checkpoint: shared rel-pos bias, final norm, layer scale, a MIM head."""
    torch.manual_seed(0)
    src = BEiTViT(**dict(dict(arch=TINY, img_size=32, patch_size=4, use_shared_rel_pos_bias=True,
                              layer_scale_init_value=0.1), **backbone))
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    state = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    state['head.fc.weight'] = torch.randn(32, 64)
    state['head.fc.bias'] = torch.zeros(32)
    torch.save({'state_dict': state, 'meta': {}}, path)
    return src


def test_beit_pretrained_refuses_an_unexpected_key_unless_allowed(tmp_path) -> None:
    import beitlab.downstream.mmseg_adapter as adapter
    path = tmp_path / 'mim.pth'
    src = _mim_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    ckpt['state_dict']['backbone.blocks.0.attn.k_bias'] = torch.zeros(64)  # no such parameter
    torch.save(ckpt, path)
    backbone = BEiTViT(arch=TINY, img_size=32, patch_size=4, use_rel_pos_bias=True,
                       layer_scale_init_value=0.1, out_type='featmap')
    with pytest.raises(StrictLoadError) as info:
        adapter.BEiTPretrained(str(path))(backbone)
    assert _rows(info.value) == [('unexpected', 'blocks.0.attn.k_bias', '[64]', '-')]
    assert any("init_cfg=dict(type='BEiTPretrained', ..., "
               "allow_unexpected=['blocks.0.attn.k_bias'])" in h for h in info.value.hints)
    init = adapter.BEiTPretrained(str(path), allow_unexpected=['blocks.*.attn.k_bias'])
    init(backbone)
    assert init.report['unexpected_keys'] == ['blocks.0.attn.k_bias']
    torch.testing.assert_close(backbone.blocks[0].attn.relative_position_bias_table,
                               src.rel_pos_bias.relative_position_bias_table)


def test_mim_to_finetune_drops_the_head_by_rule_and_refuses_another_width(tmp_path) -> None:
    register_all_modules()
    from beitlab.registry import MODELS
    path = tmp_path / 'mim.pth'
    src = _mim_checkpoint(path)
    cfg = dict(type='ImageClassifier',
               backbone=dict(type='BEiTViT', arch=TINY, img_size=32, patch_size=4,
                             out_type='avg_featmap', use_rel_pos_bias=True,
                             layer_scale_init_value=0.1),
               head=dict(type='ClsHead', num_classes=5, in_channels=64),
               pretrained=str(path))
    model = MODELS.build(cfg)
    model.init_weights()
    report = model.pretrained_report
    assert sorted(report['dropped_keys']) == ['head.fc.bias', 'head.fc.weight']
    # the transfer rules: final norm unused by a mean-pooling backbone, fc_norm fresh
    assert sorted(report['unexpected_keys']) == ['norm.bias', 'norm.weight']
    assert sorted(report['missing_keys']) == ['fc_norm.bias', 'fc_norm.weight']
    torch.testing.assert_close(model.backbone.blocks[1].mlp.fc1.weight, src.blocks[1].mlp.fc1.weight)

    narrow = copy.deepcopy(cfg)
    narrow['backbone']['arch'] = dict(TINY, embed_dims=32)
    narrow['head']['in_channels'] = 32
    model = MODELS.build(narrow)
    with pytest.raises(StrictLoadError) as info:
        model.init_weights()
    rows = _rows(info.value)
    assert ('shape', 'cls_token', '[1, 1, 64]', '[1, 1, 32]') in rows
    assert all(r[0] == 'shape' for r in rows)  # the rules still applied: only widths differ
    assert any('model.pretrained_allow = dict(shape_mismatch=[' in h for h in info.value.hints)
    with pytest.raises(KeyError, match='model.pretrained_allow has unknown keys'):
        MODELS.build(dict(cfg, pretrained_allow=dict(shapes=['*'])))


def test_official_layout_without_mask_token_loads_by_rule() -> None:
    src = BEiTViT(arch=TINY, img_size=32, patch_size=4, use_rel_pos_bias=True)
    state = {k: v for k, v in src.state_dict().items() if k != 'mask_token'}
    state['head.weight'] = torch.zeros(10, 64)  # an official fine-tuned classifier's head
    report = load_pretrained_backbone(BEiTViT(arch=TINY, img_size=32, patch_size=4,
                                              use_rel_pos_bias=True, out_type='featmap'),
                                      {'model': state})
    assert report['missing_keys'] == ['mask_token'] and report['dropped_keys'] == ['head.weight']


# ----------------------------------------------------------------------------- optimizer state
def test_optimizer_state_of_another_layout_is_named_per_parameter() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 4))
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(1, 3)).sum().backward()
    opt.step()
    saved = opt.state_dict()
    check_optimizer_state(opt, saved, model, 'ok.pth')  # the same layout passes

    wider = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 4))
    with pytest.raises(OptimizerStateError) as info:
        check_optimizer_state(torch.optim.AdamW(wider.parameters()), saved, wider, 'run.pth')
    rows = _rows(info.value)
    assert ('optimizer state', '0.weight (exp_avg)', '[2, 3]', '[5, 3]') in rows
    assert ('optimizer state', '1.weight (exp_avg_sq)', '[4, 2]', '[4, 5]') in rows
    assert not any(r[1].startswith('1.bias') for r in rows)  # [4] fits
    assert 'run.pth' in info.value.message

    fewer = torch.optim.AdamW([model[0].weight])
    with pytest.raises(OptimizerStateError) as info:
        check_optimizer_state(fewer, saved, model, 'run.pth')
    assert _rows(info.value) == [('optimizer group 0 size', '0.weight', '4 params', '1 params')]


# ----------------------------------------------------------------------------- every config pair
def _build(cfg: dict, scope: str):
    with DefaultScope.overwrite_default_scope(scope):
        if scope == 'mmseg':
            from mmseg.registry import MODELS

            import beitlab.downstream.mmseg_adapter  # noqa: F401 (what custom_imports does)
        elif scope == 'mmdet':
            from mmdet.registry import MODELS

            import beitlab.downstream.mmdet_adapter  # noqa: F401
        else:
            from beitlab.registry import MODELS
        model = MODELS.build(copy.deepcopy(cfg))
        model.init_weights()  # as the Runner does, in the config's scope
    return model


def _cfg(rel: str) -> Config:
    return Config.fromfile(str(REPO / 'configs' / rel))


@pytest.fixture(scope='module')
def producers(tmp_path_factory) -> dict:
    """Checkpoints in the layouts the producing configs write (random weights): the published
    Fashion-MNIST BEiT, the tiny MIM run, the dVAE, VQ-KD and PeCo training checkpoints."""
    register_all_modules()
    root = tmp_path_factory.mktemp('producers')
    out = {}

    def save(name: str, model: nn.Module, keep=('',)) -> None:
        state = {k: v for k, v in model.state_dict().items() if k.startswith(tuple(keep))}
        out[name] = root / f'{name}.pth'
        torch.save({'state_dict': state, 'meta': {'iter': 1}}, out[name])

    for name, rel in (('mim_fmnist', 'beit/beit_vit-fmnist_fashion-mnist.py'),
                      ('mim_tiny', 'beit/mim_vit-tiny_1xb8-2it_tiny.py')):
        cfg = _cfg(rel).model
        cfg.target_generator.checkpoint = None
        save(name, _build(cfg, 'beitlab'), keep=('backbone.', 'head.'))
    save('dvae_fmnist', _build(_cfg('dvae/dvae_fashion-mnist.py').model, 'beitlab'))
    cfg = _cfg('vqkd/vqkd_vit-fmnist_fashion-mnist.py').model
    cfg.tokenizer.teacher_checkpoint = str(out['mim_fmnist'])
    save('vqkd_fmnist', _build(cfg, 'beitlab'))
    cfg = _cfg('peco/peco_dvae_fashion-mnist.py').model
    cfg.tokenizer.perceptual_loss.checkpoint = str(out['mim_fmnist'])
    save('peco_fmnist', _build(cfg, 'beitlab'))
    return out


def _finetune(rel):
    def consumer(path):
        cfg = _cfg(rel).model
        cfg.pretrained = path
        return _build(cfg, 'beitlab').pretrained_report
    return consumer


def _backbone_init(rel, scope):
    def consumer(path):
        cfg = _cfg(rel).model.backbone
        cfg.init_cfg.checkpoint = path
        return _build(cfg, scope)
    return consumer


def _set(rel, dotted, scope='beitlab'):
    def consumer(path):
        cfg = _cfg(rel)
        cfg.merge_from_dict({dotted: path})
        return _build(cfg.model, scope)
    return consumer


# (consumer config, producer, key removed for the refusal, what loads it)
PAIRS = [
    ('beit_finetune/beit_vit-fmnist_finetune-lrd0.65_fashion-mnist.py', 'mim_fmnist',
     'backbone.blocks.0.mlp.fc1.weight',
     _finetune('beit_finetune/beit_vit-fmnist_finetune-lrd0.65_fashion-mnist.py')),
    ('beit_finetune/beit_vit-b-p16_8xb128-lrd0.65-100e_in1k_tiny.py', 'mim_tiny',
     'backbone.blocks.0.mlp.fc1.weight',
     _finetune('beit_finetune/beit_vit-b-p16_8xb128-lrd0.65-100e_in1k_tiny.py')),
    ('upernet_beit/upernet_beit-fmnist_1xb8-300it_fashion-mnist-scenes-48x48.py', 'mim_fmnist',
     'backbone.blocks.0.mlp.fc1.weight',
     _backbone_init('upernet_beit/upernet_beit-fmnist_1xb8-300it_fashion-mnist-scenes-48x48.py',
                    'mmseg')),
    ('mask-rcnn_beit/mask-rcnn_beit-fmnist-p4_sfp_1xb8-600it_fashion-mnist-scenes-48x48.py',
     'mim_fmnist', 'backbone.blocks.0.mlp.fc1.weight',
     _backbone_init(
         'mask-rcnn_beit/mask-rcnn_beit-fmnist-p4_sfp_1xb8-600it_fashion-mnist-scenes-48x48.py',
         'mmdet')),
    ('vqkd/vqkd_vit-fmnist_fashion-mnist.py', 'mim_fmnist', 'backbone.blocks.0.mlp.fc1.weight',
     _set('vqkd/vqkd_vit-fmnist_fashion-mnist.py', 'model.tokenizer.teacher_checkpoint')),
    ('peco/peco_dvae_fashion-mnist.py', 'mim_fmnist', 'backbone.blocks.0.mlp.fc1.weight',
     _set('peco/peco_dvae_fashion-mnist.py', 'model.tokenizer.perceptual_loss.checkpoint')),
    ('beit/beit_vit-fmnist_fashion-mnist.py', 'dvae_fmnist', 'tokenizer.quantizer.embedding.weight',
     _set('beit/beit_vit-fmnist_fashion-mnist.py', 'model.target_generator.checkpoint')),
    ('beit/beit_vit-fmnist_fashion-mnist.py', 'peco_fmnist', 'tokenizer.quantizer.embedding.weight',
     _set('beit/beit_vit-fmnist_fashion-mnist.py', 'model.target_generator.checkpoint')),
    ('beitv2/beitv2_vit-fmnist_fashion-mnist.py', 'vqkd_fmnist',
     'tokenizer.encoder.blocks.0.mlp.fc1.weight',
     _set('beitv2/beitv2_vit-fmnist_fashion-mnist.py', 'model.target_generator.checkpoint')),
]


@pytest.mark.parametrize('consumer_cfg,producer,removed,consume', PAIRS,
                         ids=[f'{p[1]}->{Path(p[0]).stem}' for p in PAIRS])
def test_config_pair_loads_and_refuses_a_missing_tensor(consumer_cfg, producer, removed, consume,
                                                        producers, tmp_path) -> None:
    consume(str(producers[producer]))  # loads as it did before strict loading
    ckpt = torch.load(producers[producer], weights_only=True)
    assert removed in ckpt['state_dict']
    del ckpt['state_dict'][removed]
    broken = tmp_path / 'broken.pth'
    torch.save(ckpt, broken)
    with pytest.raises(StrictLoadError) as info:
        consume(str(broken))
    short = removed.split('.', 1)[1]  # the consumer's name: prefix stripped
    assert [r[:2] for r in _rows(info.value)] == [('missing', short)]
    assert str(broken) in info.value.message
