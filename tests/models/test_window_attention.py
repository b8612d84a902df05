"""Windowed attention of BEiTViT (ViTDet Sec. 3) against a reference written here.

The reference never cuts the grid into windows: it runs each block on the whole
zero-padded patch grid with an additive mask that lets a patch attend only to the patches
of its own ``ws x ws`` window (padding included, as ViTDet leaves padded keys unmasked),
filled with the shared relative bias evaluated for the window grid. The CLS token skips
windowed blocks and attends globally in the global ones.
"""
import pytest
import torch
import torch.nn.functional as F

from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.models.backbones.window_attention import window_partition, window_unpartition

TINY = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def test_partition_round_trip_with_padding():
    x = torch.randn(2, 5, 7, 3)
    windows, pad_hw = window_partition(x, 4)
    assert pad_hw == (8, 8) and windows.shape == (2 * 4, 4, 4, 3)
    # window 1 of image 0 is rows 0-3, columns 4-7 (columns 7 padded with zeros)
    assert torch.equal(windows[1, :, :3], x[0, :4, 4:7])
    assert torch.count_nonzero(windows[1, :, 3]) == 0
    assert torch.equal(window_unpartition(windows, 4, pad_hw, (5, 7)), x)


def block_diagonal_block(block, patches, grid, ws, window_bias):
    """``block`` on ``patches [B, H*W, D]`` where a patch sees only its own window."""
    b, n, d = patches.shape
    h, w = grid
    hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
    padded = F.pad(patches.view(b, h, w, d), (0, 0, 0, wp - w, 0, hp - h)).reshape(b, hp * wp, d)
    rows, cols = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing='ij')
    window = ((rows // ws) * (wp // ws) + cols // ws).flatten()    # window of each position
    inside = ((rows % ws) * ws + cols % ws).flatten()               # its index in the window
    same = window[:, None] == window[None, :]
    values = torch.zeros(block.attn.num_heads, hp * wp, hp * wp)
    if window_bias is not None:  # [heads, 1 + ws^2, 1 + ws^2], CLS row/column first
        values = window_bias[:, 1 + inside[:, None], 1 + inside[None, :]]
    out = block(padded, (hp, wp), torch.where(same, values, float('-inf')))
    return out.view(b, hp, wp, d)[:, :h, :w].reshape(b, n, d)


def reference_forward(vit, x, ws, global_ids):
    """Every layer's tokens ``[B, 1+N, D]`` (the last after the final norm)."""
    tokens, grid = vit.embed(x)
    rel = vit.rel_pos_bias
    outs = []
    for i, block in enumerate(vit.blocks):
        if i in global_ids:
            tokens = block(tokens, grid, rel(grid) if rel is not None else None)
        else:
            window_bias = rel((ws, ws)) if rel is not None else None
            patches = block_diagonal_block(block, tokens[:, 1:], grid, ws, window_bias)
            tokens = torch.cat([tokens[:, :1], patches], dim=1)   # CLS skips the block
        outs.append(tokens)
    outs[-1] = vit.norm(outs[-1])
    return outs


@pytest.mark.parametrize('shared_bias', [True, False])
def test_windowed_backbone_equals_block_diagonal_reference(shared_bias):
    torch.manual_seed(0)
    kw = dict(arch=TINY, img_size=40, patch_size=4, out_type='raw', out_indices=(0, 1),
              layer_scale_init_value=0.1, use_shared_rel_pos_bias=shared_bias)
    # a 10 x 10 grid: windows of 4 pad it to 12 x 12; the last block (-1) stays global
    vit = BEiTViT(window_size=4, global_attn_indexes=(-1, ), **kw).eval()
    with torch.no_grad():
        for p in vit.parameters():  # non-zero biases: padded tokens get non-zero keys/values
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        outs = vit(x)
        ref = reference_forward(vit, x, ws=4, global_ids={1})
        for got, want in zip(outs, ref):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        plain = BEiTViT(**kw).eval()
        plain.load_state_dict(vit.state_dict())  # windows change no parameter
        assert not torch.allclose(plain(x)[0], outs[0], atol=1e-3)


def test_one_window_over_the_whole_grid_is_global_attention():
    """Without a CLS token a single window covering the grid is plain global attention
    (shared relative bias included)."""
    torch.manual_seed(0)
    kw = dict(arch=TINY, img_size=32, patch_size=4, use_shared_rel_pos_bias=True,
              with_cls_token=False, out_type='featmap', out_indices=(0, 1),
              layer_scale_init_value=0.1)
    vit = BEiTViT(**kw).eval()
    with torch.no_grad():
        vit.rel_pos_bias.relative_position_bias_table.normal_()
    whole = BEiTViT(window_size=8, **kw).eval()
    whole.load_state_dict(vit.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(vit(x), whole(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_global_attn_indexes_out_of_range():
    with pytest.raises(ValueError, match='global_attn_indexes entry 2 is out of range for 2 layers'):
        BEiTViT(arch=TINY, img_size=32, patch_size=4, window_size=4, global_attn_indexes=(2, ))
