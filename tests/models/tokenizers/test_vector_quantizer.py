"""VectorQuantizer: nearest codes, stop-gradients, EMA, dead-code restart."""
import pytest
import torch
import torch.nn as nn

from beitlab.models.tokenizers.quantizer import VectorQuantizer, code_perplexity


@pytest.mark.parametrize('l2_normalize', [False, True])
def test_nearest_code_matches_brute_force(l2_normalize):
    torch.manual_seed(0)
    vq = VectorQuantizer(37, 8, l2_normalize=l2_normalize).eval()
    nn.init.normal_(vq.embedding.weight)
    z_e = torch.randn(3, 8, 5, 4)
    out = vq(z_e)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 8)
    codes = vq.embedding.weight
    if l2_normalize:
        flat, codes = flat / flat.norm(dim=1, keepdim=True), codes / codes.norm(dim=1, keepdim=True)
    # brute force: every (vector, code) difference
    dists = ((flat[:, None, :] - codes[None, :, :]) ** 2).sum(-1)
    expected = dists.argmin(1).view(3, 5, 4)
    assert torch.equal(out.indices, expected)
    # forward value of the straight-through output is the chosen code
    assert torch.allclose(out.z_q.permute(0, 2, 3, 1), codes[expected], atol=1e-6)


def _encoder_and_quantizer(beta=0.25):
    torch.manual_seed(1)
    encoder = nn.Conv2d(3, 4, 1)
    vq = VectorQuantizer(16, 4, beta=beta)
    nn.init.normal_(vq.embedding.weight)
    return encoder, vq, torch.randn(2, 3, 4, 4)


def test_codebook_term_updates_only_codebook():
    encoder, vq, x = _encoder_and_quantizer()
    out = vq(encoder(x))
    out.loss_codebook.backward()
    assert vq.embedding.weight.grad is not None and vq.embedding.weight.grad.abs().sum() > 0
    assert encoder.weight.grad is None or encoder.weight.grad.abs().sum() == 0


def test_commitment_term_updates_only_encoder():
    encoder, vq, x = _encoder_and_quantizer(beta=0.5)
    z_e = encoder(x)
    out = vq(z_e)
    out.loss_commitment.backward()
    assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0
    assert vq.embedding.weight.grad is None or vq.embedding.weight.grad.abs().sum() == 0
    # value: beta * mean ||z_e - z_q||^2
    z_q = vq.embedding.weight[out.indices].permute(0, 3, 1, 2)
    assert torch.allclose(out.loss_commitment, 0.5 * ((z_e - z_q) ** 2).mean())


def test_straight_through_gradient_reaches_encoder():
    encoder, vq, x = _encoder_and_quantizer()
    z_e = encoder(x)
    z_e.retain_grad()
    out = vq(z_e)
    target = torch.randn_like(out.z_q)
    ((out.z_q - target) ** 2).sum().backward()
    # identity straight-through: dL/dz_e = dL/dz_q = 2 (z_q - target)
    z_q = vq.embedding.weight[out.indices].permute(0, 3, 1, 2).detach()
    assert torch.allclose(z_e.grad, 2 * (z_q - target), atol=1e-6)
    assert vq.embedding.weight.grad is None  # the decoder path never reaches the codebook


def test_usage_and_perplexity():
    vq = VectorQuantizer(4, 2).eval()
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.tensor([[0., 0.], [10., 0.], [0., 10.], [10., 10.]]))
    z_e = torch.tensor([[0.1, 0.], [9., 0.1], [0.2, 0.1], [9.5, 0.]]).t().reshape(1, 2, 2, 2)
    out = vq(z_e)
    assert out.indices.flatten().tolist() == [0, 1, 0, 1]
    assert out.usage.item() == pytest.approx(0.5)
    assert out.perplexity.item() == pytest.approx(2.0, rel=1e-5)
    assert code_perplexity(torch.tensor([5, 5, 5, 5])).item() == pytest.approx(4.0, rel=1e-5)


def test_ema_update_moves_code_to_assigned_mean():
    vq = VectorQuantizer(2, 2, ema_decay=0.0, ema_eps=0.0)
    assert not vq.embedding.weight.requires_grad
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.tensor([[0., 0.], [10., 10.]]))
    z_e = torch.tensor([[1., 0.], [3., 0.], [9., 9.], [11., 11.]]).t().reshape(1, 2, 2, 2)
    vq.train()(z_e)
    # decay 0: each code becomes the mean of the vectors assigned to it
    assert torch.allclose(vq.embedding.weight, torch.tensor([[2., 0.], [10., 10.]]))


def test_dead_code_restart_reseeds_from_encoder_outputs():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 3, restart_unused_after=2)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.full((8, 3), 100.))
        vq.embedding.weight[0] = 0.
    z_e = torch.randn(1, 3, 4, 4)
    vq.train()
    vq(z_e)
    assert vq.steps_unused.tolist() == [0] + [1] * 7
    vq(z_e)  # codes 1..7 unused twice -> re-seeded with encoder outputs
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 3)
    for code in vq.embedding.weight[1:]:
        assert ((flat - code).abs().sum(1) < 1e-6).any()
    assert vq.steps_unused.tolist() == [0] * 8


def official_norm_ema_step(weight: torch.Tensor, z: torch.Tensor, decay: float) -> torch.Tensor:
    """One training step of BEiT v2's NormEMAVectorQuantizer codebook, written out from the
    official ``beit2/norm_ema_quantizer.py`` (one process): ``z: [M, D]`` encoder outputs."""
    z = torch.nn.functional.normalize(z, dim=-1)
    d = z.pow(2).sum(1, keepdim=True) + weight.pow(2).sum(1) - 2 * z @ weight.t()
    encodings = torch.nn.functional.one_hot(d.argmin(1), weight.shape[0]).to(z.dtype)
    bins = encodings.sum(0)
    zero_mask = bins == 0
    bins = bins.masked_fill(zero_mask, 1.)
    embed_normalized = torch.nn.functional.normalize((z.t() @ encodings / bins[None]).t(), dim=-1)
    embed_normalized = torch.where(zero_mask[:, None], weight, embed_normalized)
    return torch.nn.functional.normalize(weight * decay + embed_normalized * (1 - decay), dim=-1)


def test_norm_ema_rule_equals_the_official_vqkd_update_over_several_steps():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 8, beta=1.0, ema_decay=0.9, l2_normalize=True,
                         ema_rule='norm_ema').train()
    reference = vq.embedding.weight.detach().clone()
    for step in range(6):
        z_e = torch.randn(2, 8, 4, 4) + step * 0.1
        out = vq(z_e)
        expected_ids = (torch.nn.functional.normalize(z_e.permute(0, 2, 3, 1).reshape(-1, 8), dim=1)
                        @ reference.t()).argmax(1)
        assert torch.equal(out.indices.flatten(), expected_ids)
        reference = official_norm_ema_step(reference, z_e.permute(0, 2, 3, 1).reshape(-1, 8), 0.9)
        torch.testing.assert_close(vq.embedding.weight, reference, atol=1e-6, rtol=0)
    # the running-sum rule (the dVAE's) ends somewhere else on the same inputs
    torch.manual_seed(0)
    other = VectorQuantizer(16, 8, beta=1.0, ema_decay=0.9, l2_normalize=True).train()
    for step in range(6):
        other(torch.randn(2, 8, 4, 4) + step * 0.1)
    assert (other.embedding.weight - reference).abs().max() > 1e-2


def test_vqkd_uses_the_official_rule_and_bad_rules_are_named():
    from beitlab.models.tokenizers.vqkd import VQKD
    from beitlab.utils import register_all_modules
    register_all_modules()
    vqkd = VQKD(encoder=dict(arch=dict(embed_dims=32, num_layers=1, num_heads=2,
                                       feedforward_channels=64), img_size=16, patch_size=8),
                teacher=None, teacher_dims=16, vocab_size=8, embed_dim=4)
    assert vqkd.quantizer.ema_rule == 'norm_ema'
    assert 'ema_embed_sum' not in dict(vqkd.quantizer.named_buffers())
    with pytest.raises(ValueError, match="ema_rule 'norm'"):
        VectorQuantizer(4, 2, ema_decay=0.9, l2_normalize=True, ema_rule='norm')
    with pytest.raises(ValueError, match='needs l2_normalize'):
        VectorQuantizer(4, 2, ema_decay=0.9, ema_rule='norm_ema')
