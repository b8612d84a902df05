"""Windowed attention (ViTDet Sec. 3): partition round trip with padding, and a windowed
block equals global attention under a block-diagonal mask (a reference written here)."""
import torch

from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.models.backbones.window_attention import (
    forward_with_windows,
    window_partition,
    window_unpartition,
    windowed_block_forward,
)

TINY = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def test_partition_round_trip_with_padding():
    x = torch.randn(2, 5, 7, 3)
    windows, pad_hw = window_partition(x, 4)
    assert pad_hw == (8, 8) and windows.shape == (2 * 4, 4, 4, 3)
    # window 1 of image 0 is rows 0-3, columns 4-7 (columns 7 padded with zeros)
    assert torch.equal(windows[1, :, :3], x[0, :4, 4:7])
    assert torch.count_nonzero(windows[1, :, 3]) == 0
    assert torch.equal(window_unpartition(windows, 4, pad_hw, (5, 7)), x)


def test_windowed_block_equals_block_diagonal_global_attention():
    torch.manual_seed(0)
    vit = BEiTViT(arch=TINY, img_size=32, patch_size=4, with_cls_token=False, out_type='featmap',
                  layer_scale_init_value=0.1).eval()
    block = vit.blocks[0]
    grid, ws = (8, 8), 4
    patches = torch.randn(2, 64, 32)
    out = windowed_block_forward(block, patches, grid, ws, shared_bias=None)
    # reference: full attention where a patch sees only patches of its own 4 x 4 window
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing='ij')
    win = (rows // ws * 2 + cols // ws).flatten()
    mask = torch.where(win[:, None] == win[None, :], 0.0, float('-inf'))[None, None]
    ref = block(patches, grid, mask)
    assert torch.allclose(out, ref, atol=1e-5)


def test_one_window_over_the_whole_grid_is_global_attention():
    """Without a CLS token a single window covering the grid is plain global attention
    (shared relative bias included); smaller windows change the output."""
    torch.manual_seed(0)
    vit = BEiTViT(arch=TINY, img_size=32, patch_size=4, use_shared_rel_pos_bias=True,
                  with_cls_token=False, out_type='featmap', out_indices=(0, 1),
                  layer_scale_init_value=0.1).eval()
    with torch.no_grad():
        vit.rel_pos_bias.relative_position_bias_table.normal_()
    x = torch.randn(1, 3, 32, 32)
    ref = vit(x)
    same = forward_with_windows(vit, x, window_size=8, global_attn_indexes=())
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ref, same))
    win = forward_with_windows(vit, x, window_size=4, global_attn_indexes=(1, ))
    assert win[0].shape == ref[0].shape and not torch.allclose(win[0], ref[0], atol=1e-3)


def test_backbone_window_args_match_the_utility():
    torch.manual_seed(0)
    kw = dict(arch=TINY, img_size=40, patch_size=4, use_rel_pos_bias=True, out_type='featmap',
              out_indices=(0, 1), layer_scale_init_value=0.1)
    vit = BEiTViT(window_size=4, global_attn_indexes=(1, ), **kw).eval()
    x = torch.randn(2, 3, 40, 40)  # 10 x 10 grid: windows of 4 need padding to 12 x 12
    outs = vit(x)
    ref = forward_with_windows(vit, x, window_size=4, global_attn_indexes=(1, ))
    assert all(torch.equal(a, b) for a, b in zip(outs, ref))
    assert outs[0].shape == (2, 32, 10, 10)
    plain = BEiTViT(**kw).eval()
    plain.load_state_dict(vit.state_dict())  # windows change no parameter
    assert not torch.allclose(plain(x)[0], outs[0], atol=1e-4)
