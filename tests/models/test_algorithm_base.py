"""The algorithm base (``beitlab/models/algorithms/base.py``): one mode dispatch, one
mask error, parts from configs or modules; and ``BEiTViT.forward_visible`` behind MAE."""
import pytest
import torch
from mmengine.structures import BaseDataElement

from beitlab.models.algorithms.base import MODES, BaseAlgorithm, MIMAlgorithm, build_part
from beitlab.registry import MODELS
from beitlab.utils import register_all_modules

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


@pytest.fixture(scope='module', autouse=True)
def _registered() -> None:
    register_all_modules()


def _vit(**kwargs) -> dict:
    return dict(dict(type='BEiTViT', arch=ARCH, img_size=32, patch_size=4, out_type='raw'),
                **kwargs)


def _simmim():
    return MODELS.build(dict(
        type='SimMIM', backbone=_vit(),
        target_generator=dict(type='PixelTarget', patch_size=4, norm_pix=False),
        head=dict(type='PatchRegressionHead', in_channels=32, out_channels=48)))


def _mae(backbone=None, **kwargs):
    return MODELS.build(dict(
        type='MAE', backbone=backbone or _vit(),
        head=dict(type='MAEDecoder', grid=8, patch_size=4, embed_dims=32,
                  decoder_embed_dims=16, decoder_depth=1, decoder_num_heads=2), **kwargs))


def _beit():
    return MODELS.build(dict(
        type='BEiT', backbone=_vit(),
        target_generator=dict(type='VisualTokenTarget', tokenizer=dict(
            type='DVAE', vocab_size=16, downsample=4, hidden_channels=8, embed_dim=8)),
        head=dict(type='MIMHead', in_channels=32, vocab_size=16)))


def _samples(masks) -> list:
    out = []
    for m in masks:
        s = BaseDataElement()
        if m is not None:
            s.mask = m
        out.append(s)
    return out


def test_every_registered_algorithm_is_built_on_the_base() -> None:
    algorithms = {name: obj for name, obj in MODELS.module_dict.items()
                  if obj.__module__.startswith('beitlab.models.algorithms.')}
    assert {'BEiT', 'BEiTv2', 'MAE', 'SimMIM', 'MaskFeat', 'ImageClassifier',
            'TokenizerTrainer'} <= set(algorithms)
    for name, obj in algorithms.items():
        assert issubclass(obj, BaseAlgorithm), name
        assert set(obj.modes) <= set(MODES) and 'loss' in obj.modes, name
    for name in ('BEiT', 'BEiTv2', 'MAE', 'SimMIM', 'MaskFeat'):
        assert issubclass(algorithms[name], MIMAlgorithm), name
    assert 'predict' not in algorithms['MAE'].modes and 'predict' not in algorithms['SimMIM'].modes


@pytest.mark.parametrize('build, allowed', [
    (_simmim, "('loss', 'tensor')"),
    (_mae, "('loss', 'tensor')"),
    (_beit, "('loss', 'predict', 'tensor')"),
    (lambda: MODELS.build(dict(type='ImageClassifier', backbone=_vit(out_type='cls_token'),
                               head=dict(type='ClsHead', num_classes=3, in_channels=32))),
     "('loss', 'predict', 'tensor')"),
])
def test_an_unknown_mode_names_the_allowed_ones(build, allowed) -> None:
    model = build()
    img = torch.randn(1, 3, 32, 32)
    bad = 'predict' if 'predict' not in allowed else 'bad'
    with pytest.raises(ValueError) as info:
        model([img, img], None, mode=bad)
    assert str(info.value) == (f'{type(model).__name__}.forward: mode={bad!r} is not one of '
                               f'{allowed}')


@pytest.mark.parametrize('build', [_simmim, _beit])
def test_a_missing_mask_names_the_key_and_the_transform(build) -> None:
    model = build()
    img = torch.randn(2, 3, 32, 32)
    for samples, found in [(None, 'no data samples were given'),
                           (_samples([None, None]), '2 of 2 samples have none'),
                           (_samples([torch.zeros(8, 8, dtype=torch.bool), None]),
                            r'1 of 2 samples have none \(indices \[1\]\)')]:
        with pytest.raises(KeyError, match=rf'{type(model).__name__} needs data_samples\[i\]\.mask'
                                           rf'.*{found}.*GenerateMask.*PackTwoViewInputs'):
            model([img, torch.rand(2, 3, 32, 32)], samples, mode='loss')


def test_optional_masks() -> None:
    model = _beit().eval()
    img = torch.randn(2, 3, 32, 32)
    mask = torch.rand(2, 8, 8) < 0.5
    assert model.stack_masks(_samples([None, None]), img.device, required=False) is None
    assert torch.equal(model.stack_masks(_samples(mask), img.device, required=False), mask)
    with torch.no_grad():  # 'tensor' without masks: logits of the intact image
        logits = model([img, img], _samples([None, None]), mode='tensor')
        intact = model.head(model.backbone.forward_features(img)[:, 1:])
        masked = model([img, img], _samples(mask), mode='tensor')
    torch.testing.assert_close(logits, intact)
    assert not torch.allclose(masked, intact)


def test_build_part_takes_configs_and_modules() -> None:
    vit = build_part(_vit())
    assert type(vit).__name__ == 'BEiTViT' and vit.patch_size == 4
    assert build_part(vit) is vit and build_part(None) is None


@pytest.mark.parametrize('as_module', [False, True])
def test_mae_default_target_uses_the_backbone_patch_size(as_module) -> None:
    backbone = MODELS.build(_vit()) if as_module else _vit()
    model = _mae(backbone)
    assert model.target_generator.patch_size == 4 and model.target_generator.norm_pix
    assert not any(p.requires_grad for p in model.target_generator.parameters())


def test_mae_runs_the_official_steps_in_order() -> None:
    torch.manual_seed(0)
    model = _mae()
    img = torch.randn(2, 3, 32, 32)
    torch.manual_seed(1)
    loss = model.loss(img)['loss']
    torch.manual_seed(1)
    ids_keep, mask, ids_restore = model.random_masking(2, 64, img.device)
    pred = model.forward_decoder(model.forward_encoder(img, ids_keep), ids_restore)
    assert torch.equal(model.forward_loss(img, pred, mask)['loss'], loss)
    target = model.target_generator(img)
    assert torch.equal(model.head.loss(model.forward_encoder(img, ids_keep), target, mask,
                                       ids_restore)['loss'], loss)


def test_forward_visible_keeps_the_given_patches_in_order() -> None:
    torch.manual_seed(0)
    vit = MODELS.build(_vit(use_shared_rel_pos_bias=True, layer_scale_init_value=0.1)).eval()
    with torch.no_grad():
        vit.rel_pos_bias.relative_position_bias_table.normal_()
        img = torch.randn(2, 3, 32, 32)
        keep = torch.tensor([[40, 5, 63, 0], [1, 2, 3, 4]])
        out = vit.forward_visible(img, keep)
        assert out.shape == (2, 5, 32)
        # permuting the kept patches permutes the output (no position leaks from the order)
        perm = torch.tensor([2, 0, 3, 1])
        swapped = vit.forward_visible(img, keep[:, perm])
        torch.testing.assert_close(swapped[:, 1:], out[:, 1:][:, perm], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(swapped[:, 0], out[:, 0], atol=1e-5, rtol=1e-5)
        # every patch in order: the stock forward
        every = torch.arange(64).expand(2, -1)
        torch.testing.assert_close(vit.forward_visible(img, every), vit.forward_features(img),
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('kwargs, message', [
    (dict(use_rel_pos_bias=True), 'use_rel_pos_bias=True'),
    (dict(window_size=4), 'window_size=4 needs the full patch grid'),
])
def test_forward_visible_refuses_what_needs_the_full_grid(kwargs, message) -> None:
    vit = MODELS.build(_vit(**kwargs))
    with pytest.raises(ValueError, match=message):
        vit.forward_visible(torch.randn(1, 3, 32, 32), torch.arange(16)[None])
    with pytest.raises(ValueError, match=message):
        _mae(_vit(**kwargs))


def test_forward_visible_checks_its_inputs() -> None:
    vit = MODELS.build(_vit())
    with pytest.raises(ValueError, match=r'ids_keep of shape \(16,\): expected \[B, N_vis\] with B = 1'):
        vit.forward_visible(torch.randn(1, 3, 32, 32), torch.arange(16))
    with pytest.raises(ValueError, match=r'input grid \(4, 4\).*differs from the grid \(8, 8\)'):
        vit.forward_visible(torch.randn(1, 3, 16, 16), torch.arange(4)[None])
