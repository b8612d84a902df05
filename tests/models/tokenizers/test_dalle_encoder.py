"""DALL-E-compatible tokenizer vs. a direct re-implementation of OpenAI's dall_e Encoder
forward over the reference state-dict layout, through the converter."""
import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from beitlab.models.tokenizers.dalle_encoder import DALLEEncoder

REPO = Path(__file__).resolve().parents[3]


def _load_converter():
    path = REPO / 'tools' / 'model_converters' / 'dalle_to_beitlab.py'
    spec = importlib.util.spec_from_file_location('dalle_to_beitlab', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_state_dict(n_hid, n_blk, vocab, group_count=4, seed=0):
    """Random weights in the dall_e layout (``blocks.group_N.block_M.res_path.conv_K.w``)."""
    g = torch.Generator().manual_seed(seed)

    def conv(n_in, n_out, kw):
        w = torch.randn(n_out, n_in, kw, kw, generator=g) / math.sqrt(n_in * kw * kw)
        return w, 0.1 * torch.randn(n_out, generator=g)  # non-zero biases catch mix-ups

    sd = {}
    sd['blocks.input.w'], sd['blocks.input.b'] = conv(3, n_hid, 7)
    n_in = n_hid
    for gi in range(1, group_count + 1):
        n_out = n_hid * 2 ** (gi - 1)
        for bi in range(1, n_blk + 1):
            cin = n_in if bi == 1 else n_out
            p = f'blocks.group_{gi}.block_{bi}.'
            if cin != n_out:
                sd[p + 'id_path.w'], sd[p + 'id_path.b'] = conv(cin, n_out, 1)
            hid = n_out // 4
            for k, (a, b, kw) in enumerate([(cin, hid, 3), (hid, hid, 3), (hid, hid, 3),
                                            (hid, n_out, 1)], 1):
                sd[p + f'res_path.conv_{k}.w'], sd[p + f'res_path.conv_{k}.b'] = conv(a, b, kw)
        n_in = n_out
    sd['blocks.output.conv.w'], sd['blocks.output.conv.b'] = conv(n_in, vocab, 1)
    return sd


def reference_forward(sd, x, n_blk, group_count=4):
    """dall_e.encoder.Encoder.forward on float32 CPU, from its source, written out."""
    def conv(x, name):
        w = sd[name + '.w']
        return F.conv2d(x, w, sd[name + '.b'], padding=(w.shape[-1] - 1) // 2)

    x = 0.8 * x + 0.1  # dall_e.utils.map_pixels with logit_laplace_eps = 0.1
    x = conv(x, 'blocks.input')
    post_gain = 1 / (group_count * n_blk) ** 2
    for gi in range(1, group_count + 1):
        for bi in range(1, n_blk + 1):
            p = f'blocks.group_{gi}.block_{bi}.'
            identity = conv(x, p + 'id_path') if p + 'id_path.w' in sd else x
            h = x
            for k in range(1, 5):
                h = conv(F.relu(h), p + f'res_path.conv_{k}')
            x = identity + post_gain * h
        if gi < group_count:
            x = F.max_pool2d(x, kernel_size=2)
    return conv(F.relu(x), 'blocks.output.conv')


@pytest.mark.parametrize('n_blk', [2])
def test_tokens_equal_reference_after_conversion(tmp_path, n_blk):
    n_hid, vocab = 64, 512
    sd = reference_state_dict(n_hid, n_blk, vocab)
    converter = _load_converter()
    src, dst = tmp_path / 'dalle_sd.pth', tmp_path / 'beitlab.pth'
    torch.save(sd, src)
    converter.main([str(src), str(dst)])

    model = DALLEEncoder(vocab_size=vocab, hidden_channels=n_hid, blocks_per_group=n_blk,
                         checkpoint=str(dst))
    assert model.frozen and not model.training
    assert all(not p.requires_grad for p in model.parameters())
    model.train()
    assert not model.training  # a frozen tokenizer stays in eval mode

    img = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(3))
    ref_logits = reference_forward(sd, img, n_blk)
    logits = model(img)
    assert logits.shape == (2, vocab, 4, 6)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-5)
    tokens = model.get_tokens(img, expected_grid=(4, 6))
    assert tokens.dtype == torch.int64
    assert torch.equal(tokens, ref_logits.argmax(1))


def test_default_architecture_is_the_released_one():
    model = DALLEEncoder()
    assert (model.vocab_size, model.downsample) == (8192, 8)
    assert model.stem.weight.shape == (256, 3, 7, 7)
    assert model.stages[3][0].shortcut.weight.shape == (2048, 1024, 1, 1)
    assert model.head.weight.shape == (8192, 2048, 1, 1)
    assert sum(p.numel() for p in model.parameters()) == sum(
        v.numel() for v in reference_state_dict(256, 2, 8192).values())


def test_converter_rejects_unknown_keys():
    converter = _load_converter()
    with pytest.raises(KeyError, match='blocks.group_1.block_1.res_path.conv_9.w'):
        converter.convert_dalle_encoder({'blocks.group_1.block_1.res_path.conv_9.w':
                                         torch.zeros(1)})


def test_grid_mismatch_names_both_grids():
    model = DALLEEncoder(vocab_size=512, hidden_channels=64, blocks_per_group=1)
    with pytest.raises(ValueError, match=r'\(2, 2\).*\(14, 14\)'):
        model.get_tokens(torch.rand(1, 3, 16, 16), expected_grid=(14, 14))
