"""BEiT masked image modeling: head, loss, targets and the algorithm (BEiT Sec. 2.3)."""
import copy

import pytest
import torch
from mmengine.structures import BaseDataElement

from beitlab.models.algorithms.beit import BEiT
from beitlab.models.heads.mim_head import MIMHead
from beitlab.models.targets.visual_tokens import VisualTokenTarget
from beitlab.models.tokenizers.dvae import DVAE
from beitlab.utils import register_all_modules

register_all_modules()

TINY_VIT = dict(type='BEiTViT',
                arch=dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128),
                img_size=32, patch_size=4, out_type='raw', use_abs_pos_emb=True,
                use_shared_rel_pos_bias=True, layer_scale_init_value=0.1)


def reference_mim_loss(feats, target, mask, weight, bias):
    """BEiT Sec. 2.3, Eq. 1 written out: mean over masked patches of -log softmax(H W_p + b_p)[v]."""
    losses, hits = [], []
    for b in range(feats.shape[0]):
        for i in range(mask.shape[1]):
            if mask[b, i]:
                logits = feats[b, 1 + i] @ weight.T + bias      # CLS at position 0
                losses.append(-torch.log_softmax(logits, -1)[target[b, i]])
                hits.append(float(logits.argmax() == target[b, i]))
    return torch.stack(losses).mean(), sum(hits) / len(hits)


def test_head_loss_matches_spec_and_masked_positions_only():
    torch.manual_seed(0)
    head = MIMHead(in_channels=16, vocab_size=11)
    feats = torch.randn(3, 1 + 12, 16)
    target = torch.randint(0, 11, (3, 12))
    mask = torch.rand(3, 12) < 0.4
    mask[:, 0] = True
    mask[:, 1] = False
    out = head.loss(feats, target, mask)
    ref_loss, ref_acc = reference_mim_loss(feats, target, mask, head.fc.weight, head.fc.bias)
    torch.testing.assert_close(out['loss'], ref_loss)
    assert out['mlm_acc'].item() == pytest.approx(ref_acc)

    changed = target.clone()
    changed[:, 1] = (changed[:, 1] + 1) % 11      # unmasked patch: no effect
    torch.testing.assert_close(head.loss(feats, changed, mask)['loss'], out['loss'], rtol=0, atol=0)
    feats_changed = feats.clone()
    feats_changed[:, 0] += 5.0                   # CLS token: no effect
    feats_changed[:, 2][~mask[:, 1]] += 5.0      # feature of unmasked patch 1: no effect
    torch.testing.assert_close(head.loss(feats_changed, target, mask)['loss'], out['loss'],
                               rtol=0, atol=0)
    changed[:, 0] = (changed[:, 0] + 1) % 11      # masked patch: changes the loss
    assert not torch.equal(head.loss(feats, changed, mask)['loss'], out['loss'])


def test_head_init_and_vocab_check():
    torch.manual_seed(0)
    head = MIMHead(in_channels=192, vocab_size=8192)
    assert head.fc.weight.shape == (8192, 192)
    assert head.fc.weight.abs().max() <= 0.02 + 1e-7   # official trunc_normal_(a=-std, b=std)
    assert head.fc.weight.std().item() == pytest.approx(0.02 * 0.5399, rel=0.05)  # +-1 sigma
    assert torch.count_nonzero(head.fc.bias) == 0
    with pytest.raises(ValueError, match='vocab_size=8192.*vocabulary of 512'):
        head.check_vocab_size(512)


def tiny_target(vocab: int = 32) -> VisualTokenTarget:
    torch.manual_seed(1)
    return VisualTokenTarget(dict(type='DVAE', vocab_size=vocab, downsample=4,
                                  hidden_channels=16, embed_dim=16))


def test_visual_token_target_frozen_grid_and_state_dict():
    target = tiny_target()
    assert target.vocab_size == 32
    img = torch.rand(2, 3, 32, 32)
    tokens = target(img, patch_grid=(8, 8))
    assert tokens.shape == (2, 64) and tokens.dtype == torch.int64
    torch.testing.assert_close(tokens, target.tokenizer.get_tokens(img).flatten(1))
    with pytest.raises(ValueError, match=r'\(8, 8\).*\(14, 14\)'):
        target(img, patch_grid=(14, 14))
    target.train()
    assert not target.tokenizer.training
    assert not any(p.requires_grad for p in target.parameters())
    assert target.state_dict() == {}          # weights come from the tokenizer checkpoint
    target.load_state_dict({}, strict=True)


def test_visual_token_target_loads_checkpoint(tmp_path):
    torch.manual_seed(2)
    dvae = DVAE(vocab_size=32, downsample=4, hidden_channels=16, embed_dim=16)
    path = tmp_path / 'dvae.pth'
    torch.save({'state_dict': {f'tokenizer.{k}': v for k, v in dvae.state_dict().items()}}, path)
    target = VisualTokenTarget(dict(type='DVAE', vocab_size=32, downsample=4,
                                    hidden_channels=16, embed_dim=16), checkpoint=str(path))
    img = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(target(img), dvae.get_tokens(img).flatten(1))


def build_tiny_beit() -> BEiT:
    torch.manual_seed(0)
    return BEiT(backbone=TINY_VIT, target_generator=tiny_target(),
                head=dict(type='MIMHead', in_channels=64, vocab_size=32))


def fake_batch(batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    img_vit = torch.randn(batch, 3, 32, 32, generator=g)
    img_tok = torch.rand(batch, 3, 32, 32, generator=g)
    masks = torch.rand(batch, 8, 8, generator=g) < 0.4
    samples = []
    for m in masks:
        s = BaseDataElement()
        s.mask = m
        samples.append(s)
    return [img_vit, img_tok], samples, masks


def test_beit_loss_equals_reference_and_tokenizer_untouched():
    model = build_tiny_beit()
    model.train()
    inputs, samples, masks = fake_batch()
    out = model(inputs, samples, mode='loss')
    assert set(out) == {'loss', 'mlm_acc'}
    target = model.target_generator.tokenizer.get_tokens(inputs[1]).flatten(1)
    feats = model.backbone.forward_features(inputs[0], masks)
    ref_loss, ref_acc = reference_mim_loss(feats, target, masks.flatten(1),
                                           model.head.fc.weight, model.head.fc.bias)
    torch.testing.assert_close(out['loss'], ref_loss)
    out['loss'].backward()
    assert model.backbone.mask_token.grad is not None
    assert model.head.fc.weight.grad is not None
    assert all(p.grad is None for p in model.target_generator.parameters())
    assert set(k.split('.')[0] for k in model.state_dict()) == {'backbone', 'head'}


def test_beit_masked_pixels_do_not_reach_the_model():
    """Masked patches are replaced by [MASK] (row-major mask == row-major patches): changing
    the pixels of a masked patch leaves the loss unchanged, an unmasked patch changes it."""
    model = build_tiny_beit().eval()
    inputs, samples, masks = fake_batch(batch=1, seed=3)
    masks[0] = False
    masks[0, 2, 5] = True       # one masked patch at row 2, column 5
    masks[0, 6, 1] = True
    base = model(inputs, samples, mode='loss')['loss']
    poked = [inputs[0].clone(), inputs[1]]
    poked[0][0, :, 2 * 4:3 * 4, 5 * 4:6 * 4] += 3.0       # the masked patch (2, 5)
    torch.testing.assert_close(model(poked, samples, mode='loss')['loss'], base)
    poked[0][0, :, 5 * 4:6 * 4, 2 * 4:3 * 4] += 3.0       # unmasked patch (5, 2)
    assert not torch.allclose(model(poked, samples, mode='loss')['loss'], base)


def test_beit_predict_and_tensor_modes():
    model = build_tiny_beit().eval()
    inputs, samples, masks = fake_batch()
    logits = model(inputs, samples, mode='tensor')
    assert logits.shape == (2, 64, 32)
    preds = model(inputs, copy.deepcopy(samples), mode='predict')
    target = model.target_generator(inputs[1]).view(2, 8, 8)
    for i, s in enumerate(preds):
        assert s.pred_tokens.shape == (8, 8) and s.pred_tokens.dtype == torch.int64
        torch.testing.assert_close(s.pred_tokens, logits[i].argmax(-1).view(8, 8))
        torch.testing.assert_close(s.target_tokens, target[i])
        assert torch.equal(s.correct, s.pred_tokens == target[i])
    with pytest.raises(ValueError, match="mode='bad'"):
        model(inputs, samples, mode='bad')


def test_beit_rejects_vocab_mismatch():
    with pytest.raises(ValueError, match='vocabulary of 32'):
        BEiT(backbone=TINY_VIT, target_generator=tiny_target(32),
             head=dict(type='MIMHead', in_channels=64, vocab_size=8192))
