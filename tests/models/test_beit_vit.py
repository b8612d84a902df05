"""BEiTViT against an independent re-implementation of official BEiT (microsoft/unilm
``beit/modeling_pretrain.py``), plus the relative position index, [MASK] handling, output
formats, init and the helpers used by fine-tuning."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from beitlab.checkpoint.layouts.official import official_to_beitlab
from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.ops.relative_position import (
    build_relative_position_index,
    resize_pos_embed,
    resize_rel_pos_bias_table,
)

TINY = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)


# --------------------------------------------------------------------------------------
# Reference: official BEiT pre-training model, plain torch, official names, explicit
# softmax attention. Written from the official algorithm, independently of beitlab.
# --------------------------------------------------------------------------------------
def official_index(wh: int, ww: int) -> torch.Tensor:
    num_relative_distance = (2 * wh - 1) * (2 * ww - 1) + 3
    coords = torch.stack(torch.meshgrid([torch.arange(wh), torch.arange(ww)], indexing='ij'))
    coords_flatten = torch.flatten(coords, 1)
    relative_coords = coords_flatten[:, :, None] - coords_flatten[:, None, :]
    relative_coords = relative_coords.permute(1, 2, 0).contiguous()
    relative_coords[:, :, 0] += wh - 1
    relative_coords[:, :, 1] += ww - 1
    relative_coords[:, :, 0] *= 2 * ww - 1
    index = torch.zeros((wh * ww + 1, ) * 2, dtype=relative_coords.dtype)
    index[1:, 1:] = relative_coords.sum(-1)
    index[0, 0:] = num_relative_distance - 3
    index[0:, 0] = num_relative_distance - 2
    index[0, 0] = num_relative_distance - 1
    return index


class RefRelativePositionBias(nn.Module):

    def __init__(self, window_size, num_heads):
        super().__init__()
        self.window_size = window_size
        n = (2 * window_size[0] - 1) * (2 * window_size[1] - 1) + 3
        self.relative_position_bias_table = nn.Parameter(torch.zeros(n, num_heads))
        self.register_buffer('relative_position_index', official_index(*window_size))

    def forward(self):
        t = self.window_size[0] * self.window_size[1] + 1
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(t, t, -1).permute(2, 0, 1).contiguous()


class RefAttention(nn.Module):

    def __init__(self, dim, num_heads, window_size=None):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.window_size = window_size
        if window_size:
            self.rpb = RefRelativePositionBias(window_size, num_heads)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, rel_pos_bias=None):
        B, N, C = x.shape
        qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, qkv_bias)
        qkv = qkv.reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        if self.window_size:
            attn = attn + self.rpb().unsqueeze(0)
        if rel_pos_bias is not None:
            attn = attn + rel_pos_bias
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, -1))

    def official_state_dict(self, prefix):
        sd = {prefix + k: v for k, v in self.state_dict().items() if not k.startswith('rpb.')}
        if self.window_size:
            sd[prefix + 'relative_position_bias_table'] = self.rpb.relative_position_bias_table
            sd[prefix + 'relative_position_index'] = self.rpb.relative_position_index
        return sd


class RefBlock(nn.Module):

    def __init__(self, dim, num_heads, ffn, init_values, window_size=None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefAttention(dim, num_heads, window_size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(dim, ffn)
        self.mlp.act = nn.GELU()
        self.mlp.fc2 = nn.Linear(ffn, dim)
        self.gamma_1 = nn.Parameter(init_values * torch.ones(dim))
        self.gamma_2 = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x, rel_pos_bias=None):
        x = x + self.gamma_1 * self.attn(self.norm1(x), rel_pos_bias=rel_pos_bias)
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class RefBEiTForMIM(nn.Module):
    """Official ``VisionTransformerForMaskedImageModeling`` (no dropout)."""

    def __init__(self, img_size=32, patch_size=4, dim=64, depth=2, num_heads=2, ffn=128,
                 vocab_size=50, init_values=0.1, shared_rel=True, per_layer_rel=False):
        super().__init__()
        self.patch_size = patch_size
        window = (img_size // patch_size, img_size // patch_size)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, window[0] * window[1] + 1, dim))
        self.rel_pos_bias = RefRelativePositionBias(window, num_heads) if shared_rel else None
        self.blocks = nn.ModuleList([
            RefBlock(dim, num_heads, ffn, init_values, window if per_layer_rel else None)
            for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.lm_head = nn.Linear(dim, vocab_size)

    def forward(self, x, bool_masked_pos):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        batch_size, seq_len, _ = x.size()
        cls_tokens = self.cls_token.expand(batch_size, -1, -1)
        mask_token = self.mask_token.expand(batch_size, seq_len, -1)
        w = bool_masked_pos.unsqueeze(-1).type_as(mask_token)
        x = x * (1 - w) + mask_token * w
        x = torch.cat((cls_tokens, x), dim=1) + self.pos_embed
        rel_pos_bias = self.rel_pos_bias() if self.rel_pos_bias is not None else None
        for blk in self.blocks:
            x = blk(x, rel_pos_bias=rel_pos_bias)
        x = self.norm(x)[:, 1:]
        return self.lm_head(x[bool_masked_pos])

    def official_state_dict(self):
        sd = {k: v for k, v in self.state_dict().items() if not k.startswith('blocks.')}
        for i, blk in enumerate(self.blocks):
            for k, v in blk.state_dict().items():
                if not k.startswith('attn.'):
                    sd[f'blocks.{i}.{k}'] = v
            sd.update(blk.attn.official_state_dict(f'blocks.{i}.attn.'))
        return {k: v.detach().clone() for k, v in sd.items()}


def randomize_(module: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def tiny_backbone(**kwargs) -> BEiTViT:
    cfg = dict(arch=TINY, img_size=32, patch_size=4)
    cfg.update(kwargs)
    return BEiTViT(**cfg)


# --------------------------------------------------------------------------------------
@pytest.mark.parametrize('grid', [(14, 14), (8, 6)])
def test_relative_position_index_matches_official(grid):
    index = build_relative_position_index(grid)
    assert index.dtype == torch.int64
    assert torch.equal(index, official_index(*grid))
    n = (2 * grid[0] - 1) * (2 * grid[1] - 1) + 3
    if grid == (14, 14):
        assert n == 732
    assert index[0, 0] == n - 1  # cls -> cls
    assert (index[0, 1:] == n - 3).all()  # cls -> token
    assert (index[1:, 0] == n - 2).all()  # token -> cls
    # patch (0, 0) to itself: offset (0, 0) -> (H-1)(2W-1) + (W-1)
    assert index[1, 1] == (grid[0] - 1) * (2 * grid[1] - 1) + grid[1] - 1
    assert int(index[1:, 1:].max()) == n - 4


def test_backbone_uses_official_index_buffers():
    m = tiny_backbone(use_shared_rel_pos_bias=True, use_rel_pos_bias=True)
    assert torch.equal(m.rel_pos_bias.relative_position_index, official_index(8, 8))
    assert torch.equal(m.blocks[1].attn.relative_position_index, official_index(8, 8))
    assert not any(k.endswith('relative_position_index') for k in m.state_dict())


@pytest.mark.parametrize('per_layer_rel', [False, True])
def test_masked_logits_match_official_reference(per_layer_rel):
    torch.manual_seed(0)
    ref = RefBEiTForMIM(shared_rel=not per_layer_rel, per_layer_rel=per_layer_rel)
    randomize_(ref)
    official = ref.official_state_dict()
    state_dict, meta = official_to_beitlab(official)
    backbone = tiny_backbone(use_shared_rel_pos_bias=not per_layer_rel,
                             use_rel_pos_bias=per_layer_rel, layer_scale_init_value=0.1,
                             out_type='raw')
    backbone.load_state_dict({k[len('backbone.'):]: v for k, v in state_dict.items()
                              if k.startswith('backbone.')}, strict=True)
    head = nn.Linear(64, 50)
    head.load_state_dict({'weight': state_dict['head.fc.weight'],
                          'bias': state_dict['head.fc.bias']})
    backbone.eval()

    x = torch.randn(3, 3, 32, 32)
    mask = torch.rand(3, 8, 8) < 0.4
    with torch.no_grad():
        expected = ref(x, mask.flatten(1))
        tokens = backbone.forward_features(x, mask)  # [B, 1+N, D]
        logits = head(tokens[:, 1:][mask.flatten(1)])
        (raw, ) = backbone(x, mask)
    assert logits.shape == (int(mask.sum()), 50)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(raw, tokens, rtol=0, atol=0)
    # the test can fail: the reference without relative bias differs
    with torch.no_grad():
        (ref.rel_pos_bias or ref.blocks[0].attn.rpb).relative_position_bias_table.zero_()
        assert not torch.allclose(ref(x, mask.flatten(1)), expected, atol=1e-3)


def test_mask_embedding_replaces_exactly_masked_positions():
    torch.manual_seed(0)
    m = tiny_backbone(use_shared_rel_pos_bias=True).eval()
    seen = []
    m.blocks[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    x = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[0, 1:3, 2:5] = True
    mask[1, 7, 0] = True
    m(x)
    m(x, mask)
    plain, masked = seen  # [B, 1+N, D] entering block 0
    flat = mask.flatten(1)
    assert torch.equal(masked[:, 0], plain[:, 0])  # CLS untouched
    patches_plain, patches_masked = plain[:, 1:], masked[:, 1:]
    assert torch.equal(patches_masked[~flat], patches_plain[~flat])
    pos = m.pos_embed[0, 1:].detach()
    expected = (m.mask_token.detach()[0] + pos).expand(2, -1, -1)[flat]
    torch.testing.assert_close(patches_masked[flat], expected, rtol=0, atol=0)
    assert not torch.allclose(patches_masked[flat], patches_plain[flat])
    # row-major: mask[0, 1, 2] is patch 1 * 8 + 2
    assert flat[0, 10] and torch.equal(patches_masked[0, 10], expected[0])
    # a flattened [B, N] mask is the same; a wrong shape names both shapes
    m(x, flat)
    assert torch.equal(seen[-1], masked)
    with pytest.raises(ValueError, match=r'\[2, 8, 8\]'):
        m(x, torch.zeros(2, 4, 4, dtype=torch.bool))


@pytest.mark.parametrize('out_type,shape', [('raw', (2, 65, 64)), ('cls_token', (2, 64)),
                                            ('featmap', (2, 64, 8, 8)),
                                            ('avg_featmap', (2, 64))])
def test_output_types_and_indices(out_type, shape):
    m = tiny_backbone(out_type=out_type, out_indices=(0, -1))
    outs = m(torch.randn(2, 3, 32, 32))
    assert len(outs) == 2 and all(o.shape == shape for o in outs)


def test_featmap_is_row_major_and_avg_featmap_uses_fc_norm():
    torch.manual_seed(0)
    raw_m = tiny_backbone(out_type='raw', final_norm=False).eval()
    x = torch.randn(2, 3, 32, 32)
    (raw, ) = raw_m(x)
    feat_m = tiny_backbone(out_type='featmap', final_norm=False).eval()
    feat_m.load_state_dict(raw_m.state_dict())
    (fmap, ) = feat_m(x)
    assert torch.equal(fmap[:, :, 2, 5], raw[:, 1 + 2 * 8 + 5])
    avg_m = tiny_backbone(out_type='avg_featmap').eval()
    keys = set(avg_m.state_dict())
    assert 'fc_norm.weight' in keys and 'norm.weight' not in keys
    missing = avg_m.load_state_dict(raw_m.state_dict(), strict=False)
    assert missing.missing_keys == ['fc_norm.weight', 'fc_norm.bias']
    with torch.no_grad():
        avg_m.fc_norm.weight.uniform_(0.5, 1.5)
        (avg, ) = avg_m(x)
    torch.testing.assert_close(avg, avg_m.fc_norm(raw[:, 1:].mean(1)))


def test_no_cls_token_and_other_grids():
    m = tiny_backbone(with_cls_token=False, out_type='raw', use_rel_pos_bias=True)
    assert m(torch.randn(1, 3, 32, 32))[0].shape == (1, 64, 64)
    with pytest.raises(ValueError, match=r'\(6, 10\).*\(8, 8\)'):
        m(torch.randn(1, 3, 24, 40))
    free = tiny_backbone(use_abs_pos_emb=False, use_shared_rel_pos_bias=True,
                         use_rel_pos_bias=True, out_type='featmap')
    assert free(torch.randn(1, 3, 24, 40))[0].shape == (1, 64, 6, 10)


def test_resize_helpers_keep_cls_entries():
    table = torch.randn(15 * 15 + 3, 2)
    assert resize_rel_pos_bias_table(table, 8, 8) is table
    out = resize_rel_pos_bias_table(table, (8, 8), (6, 10))
    assert out.shape == (11 * 19 + 3, 2)
    assert torch.equal(out[-3:], table[-3:])
    const = torch.full((15 * 15 + 3, 2), 0.7)
    torch.testing.assert_close(resize_rel_pos_bias_table(const, 8, 12)[:-3],
                               torch.full((23 * 23, 2), 0.7))
    pos = torch.randn(1, 65, 16)
    out = resize_pos_embed(pos, 8, (4, 6))
    assert out.shape == (1, 25, 16) and torch.equal(out[:, :1], pos[:, :1])
    # the interpolation follows the row-major layout: a map varying only along W
    ramp = torch.arange(8.).repeat(8).reshape(1, 64, 1).expand(1, 64, 3)
    resized = resize_pos_embed(ramp, 8, (16, 8), num_extra_tokens=0).reshape(16, 8, 3)
    torch.testing.assert_close(resized, torch.arange(8.).reshape(1, 8, 1).expand(16, 8, 3))
    with pytest.raises(ValueError, match='grid'):
        resize_rel_pos_bias_table(table, 7, 8)


def test_official_init_and_fix_init_weight():
    torch.manual_seed(0)
    m = BEiTViT(arch=dict(embed_dims=256, num_layers=4, num_heads=4, feedforward_channels=512),
                img_size=32, patch_size=4, use_shared_rel_pos_bias=True,
                layer_scale_init_value=0.1)
    for layer_id, block in enumerate(m.blocks, start=1):
        for w in (block.attn.proj.weight, block.mlp.fc2.weight):
            expected = 0.02 / math.sqrt(2 * layer_id)
            assert abs(w.std().item() / expected - 1) < 0.03, (layer_id, w.std().item())
        assert abs(block.attn.qkv.weight.std().item() / 0.02 - 1) < 0.03
        # official trunc_normal_ cuts at +-2 absolute, i.e. 100 std: plain normal in effect
        assert block.attn.qkv.weight.abs().max() < 0.02 * 6
        assert torch.equal(block.norm1.weight, torch.ones(256))
        assert not block.norm1.bias.any() and not block.attn.proj.bias.any()
        assert not block.attn.q_bias.any()
        assert torch.allclose(block.gamma_1, torch.full((256, ), .1))
    assert abs(m.mask_token.std().item() / 0.02 - 1) < 0.2
    assert abs(m.pos_embed.std().item() / 0.02 - 1) < 0.05
    assert not m.rel_pos_bias.relative_position_bias_table.any()


def test_sdpa_drop_path_layer_ids_and_frozen_stages(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(q, k, v, attn_mask=None, **kwargs):
        calls.append(attn_mask.shape)
        return sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', counting)
    m = tiny_backbone(arch=dict(TINY, num_layers=3), use_shared_rel_pos_bias=True,
                      drop_path_rate=0.2, frozen_stages=1)
    m(torch.randn(1, 3, 32, 32))
    assert calls == [(1, 2, 65, 65)] * 3
    assert [b.drop_path.drop_prob for b in m.blocks] == pytest.approx([0., 0.1, 0.2])
    assert m.num_layers == 3
    ids = {n: m.get_layer_id('backbone.' + n, prefix='backbone.') for n, _ in m.named_parameters()}
    assert ids['cls_token'] == ids['mask_token'] == ids['pos_embed'] == 0
    assert ids['patch_embed.proj.weight'] == 0
    # The shared table belongs to no block: official BEiT gives it the last id (L + 1).
    assert ids['rel_pos_bias.relative_position_bias_table'] == 4
    assert ids['blocks.0.attn.qkv.weight'] == 1 and ids['blocks.2.mlp.fc2.bias'] == 3
    assert ids['norm.weight'] == 4 and m.get_layer_id('head.fc.weight', prefix='backbone.') == 4
    # official BEiT's two names, plus (beitlab) the mask token and the shared table
    assert m.no_weight_decay() == {'cls_token', 'pos_embed', 'mask_token',
                                   'rel_pos_bias.relative_position_bias_table'}
    per_layer = tiny_backbone(use_rel_pos_bias=True, use_abs_pos_emb=False, with_mask_token=False)
    assert per_layer.no_weight_decay() == {'cls_token', 'blocks.0.attn.relative_position_bias_table',
                                           'blocks.1.attn.relative_position_bias_table'}
    # frozen_stages=1: embeddings and block 0 frozen and kept in eval mode
    m.train()
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    assert {'cls_token', 'mask_token', 'pos_embed', 'patch_embed.proj.weight',
            'rel_pos_bias.relative_position_bias_table', 'blocks.0.attn.qkv.weight'} <= frozen
    assert not any(n.startswith(('blocks.1.', 'blocks.2.', 'norm.')) for n in frozen)
    assert not m.blocks[0].training and m.blocks[1].training


def test_build_from_config_and_errors():
    from beitlab.registry import MODELS
    from beitlab.utils.setup_env import register_all_modules
    register_all_modules()
    m = MODELS.build(dict(type='BEiTViT', arch='tiny', img_size=32, patch_size=16))
    assert m.embed_dims == 192 and m.num_layers == 12 and m.num_heads == 3
    assert BEiTViT.arch_zoo['large'] == dict(embed_dims=1024, num_layers=24, num_heads=16,
                                             feedforward_channels=4096)
    with pytest.raises(KeyError, match='huge'):
        BEiTViT(arch='huge')
    with pytest.raises(ValueError, match='out_type'):
        tiny_backbone(out_type='tokens')
    with pytest.raises(ValueError, match='out_indices'):
        tiny_backbone(out_indices=2)


def test_loading_adapts_shared_table_and_other_resolution():
    torch.manual_seed(0)
    pre = tiny_backbone(use_shared_rel_pos_bias=True)  # official pre-training layout
    randomize_(pre)
    fine = tiny_backbone(img_size=48, use_rel_pos_bias=True)  # fine-tuning at 12 x 12
    fine.load_state_dict(pre.state_dict())
    table = pre.rel_pos_bias.relative_position_bias_table.detach()
    expected = resize_rel_pos_bias_table(table, 8, 12)
    for block in fine.blocks:
        assert torch.equal(block.attn.relative_position_bias_table.detach(), expected)
    assert torch.equal(fine.pos_embed.detach(), resize_pos_embed(pre.pos_embed.detach(), 8, 12))
    assert torch.equal(fine.blocks[1].mlp.fc2.weight, pre.blocks[1].mlp.fc2.weight)
