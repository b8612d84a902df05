"""BEiTViT.forward_masked (the last layer on the masked patches only) gives the same
masked-patch outputs and the same gradients as the full forward, so the MIM loss of
BEiT is unchanged by it."""
import pytest
import torch

from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.models.heads.mim_head import MIMHead

ARCH = dict(embed_dims=32, num_layers=3, num_heads=4, feedforward_channels=64)


def _mask(batch: int, grid: int, seed: int = 0) -> torch.Tensor:
    """Masks with a different number of masked patches per image (as blockwise ones)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch, grid * grid, dtype=torch.bool)
    for i in range(batch):
        count = 3 + 2 * i
        mask[i, torch.randperm(grid * grid, generator=g)[:count]] = True
    return mask.view(batch, grid, grid)


@pytest.mark.parametrize('bias', ['shared', 'per_layer', 'none'])
def test_forward_masked_equals_full_forward(bias: str) -> None:
    torch.manual_seed(0)
    backbone = BEiTViT(arch=ARCH, img_size=32, patch_size=8, out_type='raw',
                       use_abs_pos_emb=bias == 'none',
                       use_shared_rel_pos_bias=bias == 'shared',
                       use_rel_pos_bias=bias == 'per_layer',
                       layer_scale_init_value=0.1)
    # Non-zero biases and tables, so that a wrong row of the bias would show.
    with torch.no_grad():
        for name, p in backbone.named_parameters():
            if 'relative_position_bias_table' in name or name.endswith(('q_bias', 'v_bias')):
                p.normal_()
    x = torch.randn(3, 3, 32, 32)
    mask = _mask(3, 4)
    flat = mask.flatten(1)

    full = backbone.forward_features(x, mask)[:, 1:][flat]
    fast = backbone.forward_masked(x, mask)
    assert fast.shape == (int(flat.sum()), 32)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)

    head = MIMHead(in_channels=32, vocab_size=16)
    target = torch.randint(0, 16, flat.shape)
    grads = []
    for feats_fn in (lambda: backbone.forward_features(x, mask),
                     lambda: backbone.forward_masked(x, mask)):
        backbone.zero_grad()
        head.zero_grad()
        losses = head.loss(feats_fn(), target, flat)
        losses['loss'].backward()
        grads.append({n: p.grad.clone() for n, p in backbone.named_parameters()
                      if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6,
                                   msg=name)


def test_mim_head_rejects_masked_features_of_the_wrong_count() -> None:
    head = MIMHead(in_channels=8, vocab_size=4)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[:, :2] = True
    with pytest.raises(ValueError, match='3 masked-token features for a mask that selects 4'):
        head.loss(torch.randn(3, 8), torch.zeros(2, 4, dtype=torch.long), mask)
