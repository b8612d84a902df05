"""MAE, SimMIM / MaskFeat, VQ-KD, PeCo and BEiT v2 on tiny models (2 layers, 32 px)."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from beitlab.registry import MODELS, TOKENIZERS
from beitlab.utils import register_all_modules

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


@pytest.fixture(scope='module', autouse=True)
def _registered() -> None:
    register_all_modules()


def _vit(**kwargs) -> dict:
    return dict(type='BEiTViT', arch=ARCH, img_size=32, patch_size=4, **kwargs)


def _mae(**backbone_kwargs):
    return MODELS.build(dict(
        type='MAE', mask_ratio=0.75, backbone=_vit(out_type='raw', **backbone_kwargs),
        head=dict(type='MAEDecoder', grid=8, patch_size=4, embed_dims=32,
                  decoder_embed_dims=16, decoder_depth=1, decoder_num_heads=2)))


def _samples(mask: torch.Tensor) -> list:
    out = []
    for m in mask:
        s = BaseDataElement()
        s.mask = m
        out.append(s)
    return out


def test_mae_encoder_sees_only_visible_tokens() -> None:
    torch.manual_seed(0)
    model = _mae(use_shared_rel_pos_bias=True, layer_scale_init_value=0.1)
    seen = []
    hooks = [b.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
             for b in model.backbone.blocks]
    losses = model(torch.randn(3, 3, 32, 32), None, mode='loss')
    for h in hooks:
        h.remove()
    # 64 patches, 25 % visible = 16, plus CLS, in every encoder block
    assert seen == [17, 17]
    assert torch.isfinite(losses['loss'])
    losses['loss'].backward()
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0


def test_mae_encoder_with_all_tokens_equals_the_backbone() -> None:
    # gathering every token in order (shared rel-pos bias gathered too) must reproduce
    # the stock backbone's forward, so the visible-token path computes the same function
    torch.manual_seed(0)
    model = _mae(use_shared_rel_pos_bias=True, layer_scale_init_value=0.1).eval()
    with torch.no_grad():
        model.backbone.rel_pos_bias.relative_position_bias_table.normal_()
        img = torch.randn(2, 3, 32, 32)
        ids = torch.arange(64).expand(2, -1)
        assert torch.allclose(model.forward_encoder(img, ids),
                              model.backbone.forward_features(img), atol=1e-5)
        # a visible subset sees exactly the biases of its own positions
        keep = torch.tensor([[40, 5, 63, 0]]).expand(2, -1)
        full = model.backbone.rel_pos_bias()                       # [heads, 65, 65]
        got = model.forward_encoder(img, keep)
        # same result as the full-sequence math restricted to CLS + the kept patches
        bb = model.backbone
        x = bb.patch_embed(img) + bb.pos_embed[:, 1:]
        x = torch.cat([(bb.cls_token + bb.pos_embed[:, :1]).expand(2, -1, -1), x[:, keep[0]]], 1)
        idx = torch.cat([torch.zeros(1, dtype=torch.long), keep[0] + 1])
        bias = full[:, idx][:, :, idx]
        for block in bb.blocks:
            x = block(x, bb.grid, bias)
        assert torch.allclose(got, bb.norm(x), atol=1e-5)


def test_mae_loss_covers_masked_patches_only() -> None:
    torch.manual_seed(0)
    model = _mae()
    img = torch.randn(2, 3, 32, 32)
    ids_keep, mask, ids_restore = model.random_masking(2, 64, img.device)
    assert mask.sum(1).tolist() == [48, 48]
    assert not mask.gather(1, ids_keep).any()           # kept patches are not masked
    latent = model.forward_encoder(img, ids_keep)
    target = model.target_generator(img)
    loss = model.head.loss(latent, target, mask, ids_restore)['loss']
    pred = model.head(latent, ids_restore)
    manual = ((pred - target) ** 2).mean(-1)[mask].mean()
    assert torch.allclose(loss, manual)
    changed_visible = target.clone()
    changed_visible[~mask] += 10.0
    assert torch.allclose(model.head.loss(latent, changed_visible, mask, ids_restore)['loss'],
                          loss)
    changed_masked = target.clone()
    changed_masked[mask] += 10.0
    assert model.head.loss(latent, changed_masked, mask, ids_restore)['loss'] > loss + 1


def test_mae_refuses_per_layer_relative_bias() -> None:
    with pytest.raises(ValueError, match='use_rel_pos_bias'):
        _mae(use_rel_pos_bias=True)


@pytest.mark.parametrize('algo, target, out_channels, loss', [
    ('SimMIM', dict(type='PixelTarget', patch_size=4, norm_pix=False), 48, 'l1'),
    ('MaskFeat', dict(type='HOGTarget', patch_size=4, cell_size=4, gaussian_window=4), 27, 'l2'),
])
def test_masked_regression_loss_is_on_masked_patches(algo, target, out_channels, loss) -> None:
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type=algo, backbone=_vit(out_type='raw'), target_generator=target,
        head=dict(type='PatchRegressionHead', in_channels=32, out_channels=out_channels,
                  loss=loss)))
    img = torch.randn(2, 3, 32, 32)
    mask = torch.rand(2, 8, 8) < 0.5
    losses = model([img, img], _samples(mask), mode='loss')
    feats = model.backbone.forward_features(img, mask)[:, 1:]
    pred = model.head(feats)
    tgt = model.target_generator(img)
    m = mask.flatten(1)
    err = (pred - tgt).abs() if loss == 'l1' else (pred - tgt) ** 2
    assert torch.allclose(losses['loss'], err[m].mean(), atol=1e-6)
    # the masked input really differs from the clean one (mask tokens in)
    assert not torch.allclose(feats, model.backbone.forward_features(img)[:, 1:])


def _vqkd(**kwargs):
    cfg = dict(type='VQKD', encoder=dict(arch=ARCH, img_size=32, patch_size=4),
               teacher=dict(arch=ARCH, img_size=32, patch_size=4, out_type='featmap'),
               vocab_size=16, embed_dim=8)
    cfg.update(kwargs)
    return TOKENIZERS.build(cfg)


def test_vqkd_teacher_from_checkpoint_is_frozen_and_not_saved(tmp_path) -> None:
    torch.manual_seed(0)
    teacher = MODELS.build(_vit(out_type='featmap'))
    ckpt = tmp_path / 'teacher.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in teacher.state_dict().items()}},
               ckpt)
    tok = _vqkd(teacher=dict(arch=ARCH, img_size=32, patch_size=4, out_type='featmap'),
                teacher_checkpoint=str(ckpt))
    assert torch.equal(tok.teacher.patch_embed.proj.weight, teacher.patch_embed.proj.weight)
    assert not any('teacher' in k for k in tok.state_dict())
    assert not any(p is tok.teacher.patch_embed.proj.weight for p in tok.parameters())
    img = torch.rand(2, 3, 32, 32)
    tok.eval()  # no EMA step between the two forwards below
    losses = tok.loss(img)
    rec = tok(img)['rec']
    target = teacher(img.sub(0.5).div(0.5))[0].flatten(2).transpose(1, 2)
    assert torch.allclose(losses['loss_rec'], 1 - F.cosine_similarity(rec, target, -1).mean(),
                          atol=1e-5)
    (losses['loss_rec'] + losses['loss_commitment']).backward()
    assert tok.encoder.patch_embed.proj.weight.grad is not None
    # the codebook is l2-normalised and follows the EMA (no gradient), also after a step
    tok.train()
    before = tok.quantizer.embedding.weight.clone()
    tok.loss(img)
    assert not torch.equal(before, tok.quantizer.embedding.weight)
    assert torch.allclose(tok.quantizer.embedding.weight.norm(dim=1), torch.ones(16), atol=1e-5)
    assert not tok.quantizer.embedding.weight.requires_grad


def test_vqkd_tokens_are_cosine_nearest_codes() -> None:
    torch.manual_seed(0)
    tok = _vqkd()
    img = torch.rand(2, 3, 32, 32)
    tokens = tok.get_tokens(img)
    assert tokens.shape == (2, 8, 8) and tokens.dtype == torch.int64
    z = F.normalize(tok.encode(img), dim=1).permute(0, 2, 3, 1)   # [B, h, w, e]
    codes = F.normalize(tok.quantizer.embedding.weight, dim=1)
    assert torch.equal(tokens, (z @ codes.t()).argmax(-1))


def test_peco_perceptual_loss_and_dvae_compatible_state_dict() -> None:
    torch.manual_seed(0)
    dvae_cfg = dict(vocab_size=16, downsample=4, hidden_channels=8, embed_dim=8)
    peco = TOKENIZERS.build(dict(
        type='PerceptualDVAE', **dvae_cfg,
        perceptual_loss=dict(network=dict(arch=ARCH, img_size=32, patch_size=4,
                                          out_type='featmap', out_indices=(0, 1)))))
    img = torch.rand(2, 3, 32, 32)
    ploss = peco.perceptual_loss
    assert ploss(img, img) == 0
    pred = (img + 0.1 * torch.randn_like(img)).requires_grad_()
    value = ploss(pred, img)
    value.backward()
    assert value > 0 and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in ploss.network.parameters())
    losses = peco.loss(img)
    assert 'loss_perceptual' in losses and losses['loss_perceptual'] > 0
    dvae = TOKENIZERS.build(dict(type='DVAE', **dvae_cfg))
    assert set(peco.state_dict()) == set(dvae.state_dict())     # a PeCo checkpoint is a dVAE one
    dvae.load_state_dict(peco.state_dict())


def test_beitv2_patch_aggregation_uses_final_cls_and_early_patches() -> None:
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='BEiTv2', backbone=_vit(out_type='raw', out_indices=(0, 1),
                                     use_shared_rel_pos_bias=True),
        target_generator=dict(type='VisualTokenTarget', tokenizer=dict(
            type='VQKD', encoder=dict(arch=ARCH, img_size=32, patch_size=4),
            teacher_dims=32, vocab_size=16, embed_dim=8)),
        neck=dict(type='PatchAggregationNeck', embed_dims=32, num_heads=2,
                  feedforward_channels=64, num_layers=1),
        head=dict(type='MIMHead', in_channels=32, vocab_size=16)))
    img = torch.randn(2, 3, 32, 32)
    mask = torch.rand(2, 8, 8) < 0.4
    losses = model([img, torch.rand(2, 3, 32, 32)], _samples(mask), mode='loss')
    assert set(losses) == {'loss', 'mlm_acc', 'loss_cls_pt', 'mlm_acc_cls_pt'}
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert model.neck.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='out_indices'):
        MODELS.build(dict(type='BEiTv2', backbone=_vit(out_type='raw'),
                          target_generator=model.target_generator,
                          neck=dict(type='PatchAggregationNeck', embed_dims=32, num_heads=2,
                                    feedforward_channels=64),
                          head=dict(type='MIMHead', in_channels=32, vocab_size=16)))
