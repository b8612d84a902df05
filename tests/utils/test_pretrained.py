"""load_pretrained_backbone: shared bias into every layer, grid interpolation keeps the values
at coinciding positions, MIM head dropped, missing/unexpected keys reported; classifier
conversion to and from the official layout."""
import pytest
import torch

from beitlab.checkpoint.layouts.official import beitlab_classifier_to_official, official_classifier_to_beitlab
from beitlab.checkpoint.pretrained import load_pretrained_backbone
from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.ops.relative_position import resize_rel_pos_bias_table
from beitlab.utils.strict_load import StrictLoadError

TINY = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)


def pretrain_backbone(img_size: int = 16) -> BEiTViT:
    """The pre-training layout: abs pos embed + ONE shared relative position bias."""
    torch.manual_seed(0)
    m = BEiTViT(arch=TINY, img_size=img_size, patch_size=4, use_shared_rel_pos_bias=True,
                layer_scale_init_value=0.1)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    return m


def finetune_backbone(img_size: int = 16) -> BEiTViT:
    return BEiTViT(arch=TINY, img_size=img_size, patch_size=4, use_rel_pos_bias=True,
                   layer_scale_init_value=0.1, out_type='avg_featmap')


def beitlab_checkpoint(src: BEiTViT) -> dict:
    state = {'backbone.' + k: v for k, v in src.state_dict().items()}
    state['head.fc.weight'] = torch.randn(512, 64)  # the MIM head
    state['target_generator.tokenizer.w'] = torch.randn(3)
    return {'state_dict': state, 'meta': {'epoch': 1}}


def test_shared_bias_lands_in_every_layer_and_head_is_dropped(tmp_path):
    src = pretrain_backbone()
    path = tmp_path / 'mim.pth'
    torch.save(beitlab_checkpoint(src), path)
    dst = finetune_backbone()
    report = load_pretrained_backbone(dst, str(path))
    shared = src.rel_pos_bias.relative_position_bias_table
    for block in dst.blocks:
        torch.testing.assert_close(block.attn.relative_position_bias_table, shared, rtol=0, atol=0)
    assert report['copied_keys'] == [f'blocks.{i}.attn.relative_position_bias_table'
                                     for i in range(2)]
    assert sorted(report['dropped_keys']) == ['head.fc.weight', 'target_generator.tokenizer.w']
    # the fine-tuning model has fc_norm instead of norm: reported both ways
    assert sorted(report['missing_keys']) == ['fc_norm.bias', 'fc_norm.weight']
    assert sorted(report['unexpected_keys']) == ['norm.bias', 'norm.weight']
    torch.testing.assert_close(dst.blocks[1].mlp.fc1.weight, src.blocks[1].mlp.fc1.weight)
    torch.testing.assert_close(dst.pos_embed, src.pos_embed)


def test_interpolation_keeps_values_at_coinciding_positions():
    # grid 4 -> 12 (factor 3): with bicubic, align_corners=False, output index 3i+1 samples
    # input index i exactly; bias tables: 7 -> 21 offsets per axis, the same factor 3.
    src = pretrain_backbone(img_size=16)  # grid 4
    official = {k: v for k, v in src.state_dict().items()}
    official['lm_head.weight'] = torch.randn(512, 64)
    dst = BEiTViT(arch=TINY, img_size=48, patch_size=4, use_rel_pos_bias=True)  # grid 12
    # the target has no layer scale: the source's gamma_* are ignored, explicitly
    report = load_pretrained_backbone(dst, {'model': official},
                                      allow_unexpected=['blocks.*.gamma_*'])
    assert report['dropped_keys'] == ['lm_head.weight']
    assert 'mask_token' not in report['missing_keys']
    src_pos = src.pos_embed[0, 1:].reshape(4, 4, 64)
    dst_pos = dst.pos_embed[0, 1:].reshape(12, 12, 64)
    idx = torch.arange(4) * 3 + 1
    torch.testing.assert_close(dst_pos[idx][:, idx], src_pos, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(dst.pos_embed[0, 0], src.pos_embed[0, 0], rtol=0, atol=0)  # CLS
    s = src.rel_pos_bias.relative_position_bias_table
    d = dst.blocks[0].attn.relative_position_bias_table
    s_off, d_off = s[:-3].reshape(7, 7, 2), d[:-3].reshape(23, 23, 2)
    # (2*12-1) = 23 offsets: not a multiple of 7, so only the centre (offset 0) coincides
    torch.testing.assert_close(d_off[11, 11], s_off[3, 3], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(d[-3:], s[-3:], rtol=0, atol=0)  # the CLS entries are kept


def test_bias_table_interpolation_on_an_aligned_grid():
    # grid 4 (7 offsets) -> grid 11 (21 offsets): factor 3, every source offset coincides
    src = pretrain_backbone(img_size=16)
    dst = BEiTViT(arch=TINY, img_size=44, patch_size=4, use_rel_pos_bias=True,
                  use_abs_pos_emb=False, layer_scale_init_value=0.1)
    # the target has no absolute position embedding: the source's is ignored, explicitly
    report = load_pretrained_backbone(dst, {'model': src.state_dict()},
                                      allow_unexpected=['pos_embed'])
    assert report['unexpected_keys'] == ['pos_embed'] and report['missing_keys'] == []
    table = src.rel_pos_bias.relative_position_bias_table.detach()
    loaded = dst.blocks[1].attn.relative_position_bias_table.detach()
    # the official geometric resize (tests/models/test_rel_pos_resize.py pins it)
    torch.testing.assert_close(loaded, resize_rel_pos_bias_table(table, 4, 11))
    s, d = table[:-3].reshape(7, 7, 2), loaded[:-3].reshape(21, 21, 2)
    torch.testing.assert_close(d[9:12, 9:12], s[2:5, 2:5], rtol=1e-4, atol=1e-4)  # offsets -1..1
    # plain bicubic, on this aligned grid, passes through every source offset (3k + 1)
    bicubic = resize_rel_pos_bias_table(table, 4, 11, method='bicubic')[:-3].reshape(21, 21, 2)
    idx = torch.arange(7) * 3 + 1
    torch.testing.assert_close(bicubic[idx][:, idx], s, rtol=1e-4, atol=1e-4)


def test_unknown_keys_are_reported_and_wrong_shapes_raise():
    dst = finetune_backbone()
    state = {'backbone.' + k: v for k, v in finetune_backbone().state_dict().items()}
    state['backbone.extra.weight'] = torch.zeros(1)
    with pytest.raises(StrictLoadError, match='extra.weight'):
        load_pretrained_backbone(dst, state)
    report = load_pretrained_backbone(dst, state, allow_unexpected=['extra.*'])
    assert report['unexpected_keys'] == ['extra.weight'] and report['missing_keys'] == []
    state['backbone.patch_embed.proj.weight'] = torch.zeros(64, 3, 8, 8)
    with pytest.raises(RuntimeError, match='patch_embed.proj.weight'):
        load_pretrained_backbone(dst, state)


def test_official_classifier_round_trip():
    official = {'cls_token': torch.randn(1, 1, 8), 'fc_norm.weight': torch.randn(8),
                'head.weight': torch.randn(10, 8), 'head.bias': torch.randn(10),
                'blocks.0.attn.relative_position_index': torch.zeros(2, 2, dtype=torch.long)}
    ours = official_classifier_to_beitlab({'model': official})
    assert sorted(ours) == ['backbone.cls_token', 'backbone.fc_norm.weight', 'head.fc.bias',
                            'head.fc.weight']
    back = beitlab_classifier_to_official(ours)
    assert sorted(back) == ['cls_token', 'fc_norm.weight', 'head.bias', 'head.weight']
    torch.testing.assert_close(back['head.weight'], official['head.weight'])
    with pytest.raises(KeyError, match='neck.w'):
        beitlab_classifier_to_official({'neck.w': torch.zeros(1)})
