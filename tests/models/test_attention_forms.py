"""Attention forms (beitlab.ops.attention): 'sdpa' and 'explicit' give the values and the
gradients of the reference math written here, softmax(q k^T / sqrt(d) + bias) v with q/v
biases and the relative position bias looked up from its table(s), in fp64, fp32 and bf16
autocast; for a shared, a per-layer, both or no bias, the masked-only query path, windowed
attention and the whole backbone; and 'auto' takes the form its table documents."""
import copy
import math
from typing import Dict, Optional, Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from beitlab.models.backbones import beit_layers
from beitlab.models.backbones.beit_layers import BEiTAttention
from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.models.backbones.rel_pos_bias import RelativePositionBias
from beitlab.ops.attention import (
    DEFAULT_FORMS,
    attention_case,
    biased_attention,
    select_attn_impl,
)
from beitlab.ops.relative_position import build_relative_position_index

D, HEADS, SIDE, BATCH = 32, 4, 4, 3
T = 1 + SIDE * SIDE
FORMS = ('sdpa', 'explicit')
BIASES = ('shared', 'per_layer', 'both', 'none')
# Relative error bounds (norm of the difference over the norm of the reference, and the
# largest difference over the largest reference entry) against the fp64 reference. bf16
# keeps 8 bits of mantissa (relative rounding 2^-9 = 2e-3 per value); the inputs, scores and
# probabilities are each rounded, which measures about 1e-2 here. A missing scale, a wrong
# bias row or a dropped q/v bias is off by far more (tens of percent).
TOL = {torch.float64: 1e-10, torch.float32: 5e-6, torch.bfloat16: 3e-2}
TINY = dict(embed_dims=D, num_layers=2, num_heads=HEADS, feedforward_channels=64)


def close(actual: Tensor, ref: Tensor, tol: float, what: str) -> None:
    actual, ref = actual.double(), ref.double()
    assert actual.shape == ref.shape, (what, actual.shape, ref.shape)
    norm_err = ((actual - ref).norm() / ref.norm()).item()
    max_err = ((actual - ref).abs().max() / ref.abs().max()).item()
    assert norm_err <= tol and max_err <= 2 * tol, f'{what}: relative error {norm_err:.2e} ' \
        f'(max {max_err:.2e}) above {tol:.0e}'


def table_bias(table: Tensor, side: int) -> Tensor:
    """``[heads, T, T]`` from a table, gathered here with the official index."""
    index = build_relative_position_index((side, side))
    t = index.shape[0]
    return table[index.reshape(-1)].reshape(t, t, -1).permute(2, 0, 1)


def reference_layer(attn: BEiTAttention, rel: Optional[RelativePositionBias], x: Tensor) -> Tensor:
    """The attention layer written out on its parameters: ``[B, T, D]`` -> ``[B, T, D]``."""
    b, t, d = x.shape
    w = attn.qkv.weight
    q = x @ w[:d].T + attn.q_bias
    k = x @ w[d:2 * d].T
    v = x @ w[2 * d:].T + attn.v_bias
    q, k, v = (y.reshape(b, t, attn.num_heads, -1).transpose(1, 2) for y in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(attn.head_dims)
    if attn.relative_position_bias_table is not None:
        scores = scores + table_bias(attn.relative_position_bias_table, SIDE)
    if rel is not None:
        scores = scores + table_bias(rel.relative_position_bias_table, SIDE)
    out = scores.softmax(-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(b, t, d))


def make_layer(bias: str) -> Tuple[BEiTAttention, Optional[RelativePositionBias]]:
    torch.manual_seed(0)
    attn = BEiTAttention(D, HEADS, grid=(SIDE, SIDE) if bias in ('per_layer', 'both') else None)
    rel = RelativePositionBias((SIDE, SIDE), HEADS) if bias in ('shared', 'both') else None
    modules = [attn] if rel is None else [attn, rel]
    with torch.no_grad():
        for name, p in (item for m in modules for item in m.named_parameters()):
            # weights keep q, k, v entries near unit size; biases and tables matter
            p.normal_(std=0.5 if 'table' in name else 0.3 if p.dim() == 1 else D ** -0.5)
    return attn, rel


def named_grads(loss: Tensor, x: Tensor, *modules) -> Dict[str, Tensor]:
    params = {f'{i}.{n}': p for i, m in enumerate(modules) if m is not None
              for n, p in m.named_parameters()}
    grads = torch.autograd.grad(loss, [x] + list(params.values()))
    return dict(zip(['x'] + list(params), grads))


def query_rows(generator: torch.Generator, q: int) -> Tensor:
    """``[B, Q]`` distinct token positions per row, not sorted."""
    return torch.stack([torch.randperm(T, generator=generator)[:q] for _ in range(BATCH)])


@pytest.mark.parametrize('masked_only', [False, True], ids=['all_queries', 'query_index'])
@pytest.mark.parametrize('bias', BIASES)
@pytest.mark.parametrize('form', FORMS)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.bfloat16],
                         ids=['fp64', 'fp32', 'bf16_autocast'])
def test_layer_matches_reference_values_and_gradients(form, bias, masked_only, dtype):
    attn, rel = make_layer(bias)
    gen = torch.Generator().manual_seed(1)
    x64 = torch.randn(BATCH, T, D, generator=gen, dtype=torch.float64)
    index = query_rows(gen, 7) if masked_only else None
    n_out = index.shape[1] if masked_only else T
    weight = torch.randn(BATCH, n_out, D, generator=gen, dtype=torch.float64)

    ref_attn, ref_rel = copy.deepcopy(attn).double(), copy.deepcopy(rel)
    ref_rel = ref_rel.double() if ref_rel is not None else None
    x_ref = x64.clone().requires_grad_()
    ref = reference_layer(ref_attn, ref_rel, x_ref)
    if masked_only:
        ref = torch.gather(ref, 1, index.unsqueeze(-1).expand(-1, -1, D))
    ref_grads = named_grads((ref * weight).sum(), x_ref, ref_attn, ref_rel)

    attn.attn_impl = form
    param_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    attn.to(param_dtype)
    if rel is not None:
        rel.to(param_dtype)
    x = x64.to(param_dtype).requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        shared = rel() if rel is not None else None
        out = attn(x, (SIDE, SIDE), shared, query_index=index)
    grads = named_grads((out.double() * weight).sum(), x, attn, rel)

    tol = TOL[dtype]
    close(out, ref, tol, 'output')
    assert set(grads) == set(ref_grads)
    for name, ref_grad in ref_grads.items():
        close(grads[name], ref_grad, tol, f'grad of {name}')


def reference_core(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor] = None,
                   impl: str = 'auto') -> Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + bias
    return scores.softmax(-1) @ v


BACKBONES = {
    # windowed blocks (2 x 2 windows of 2 x 2 patches, no CLS there) and one global block,
    # a shared and per-layer tables
    'windowed': dict(window_size=2, global_attn_indexes=(1, ), use_shared_rel_pos_bias=True,
                     use_rel_pos_bias=True),
    'shared': dict(use_shared_rel_pos_bias=True),
    'per_layer': dict(use_rel_pos_bias=True),
    'none': dict(),
}


# Each backbone through both entry points, except forward_masked of the windowed one: that
# backbone's forward_masked is its forward_features, which the 'forward' case runs already.
BACKBONE_PATHS = [(config, path) for config in sorted(BACKBONES)
                  for path in ('forward', 'forward_masked')
                  if (config, path) != ('windowed', 'forward_masked')]


@pytest.mark.parametrize('config,path', BACKBONE_PATHS, ids=[f'{c}-{p}' for c, p in BACKBONE_PATHS])
@pytest.mark.parametrize('form', FORMS)
@pytest.mark.parametrize('dtype', [torch.float64, torch.bfloat16], ids=['fp64', 'bf16_autocast'])
def test_backbone_matches_reference_core(monkeypatch, form, config, path, dtype):
    """The whole backbone in each form against the same backbone with the reference
    attention core (fp64): values and every parameter's gradient."""
    torch.manual_seed(0)
    vit = BEiTViT(arch=TINY, img_size=8, patch_size=2, out_type='raw', layer_scale_init_value=0.5,
                  attn_impl=form, **BACKBONES[config])
    with torch.no_grad():
        for name, p in vit.named_parameters():
            if 'relative_position_bias_table' in name or name.endswith(('q_bias', 'v_bias')):
                p.normal_(std=0.5)
    gen = torch.Generator().manual_seed(2)
    img = torch.randn(BATCH, 3, 8, 8, generator=gen, dtype=torch.float64)
    mask = torch.rand(BATCH, 4, 4, generator=gen) < 0.4
    mask[:, 0, 0] = True

    def run(model, x, amp):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
            out = model(x, mask)[0] if path == 'forward' else model.forward_masked(x, mask)
        out = out.double()
        w = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        return out, named_grads((out * w).sum(), x, model)

    ref_vit = copy.deepcopy(vit).double()
    with monkeypatch.context() as patch:
        patch.setattr(beit_layers, 'biased_attention', reference_core)
        ref, ref_grads = run(ref_vit, img.clone().requires_grad_(), False)
    if dtype == torch.float64:
        vit.double()
    out, grads = run(vit, img.to(torch.float64 if dtype == torch.float64 else torch.float32)
                     .requires_grad_(), dtype == torch.bfloat16)
    tol = TOL[dtype]
    close(out, ref, tol, 'output')
    assert set(grads) == set(ref_grads)
    for name, ref_grad in ref_grads.items():
        close(grads[name], ref_grad, tol, f'grad of {name}')


def test_forms_differ_from_a_wrong_reference():
    """The tolerances catch a plausible slip: the scale applied twice, or the bias dropped."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, HEADS, T, 16, generator=gen) for _ in range(3))
    bias = torch.randn(HEADS, T, T, generator=gen)
    good = reference_core(q, k, v, bias)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = biased_attention(q, k, v, bias, 'explicit')
    close(out, good, TOL[torch.bfloat16], 'explicit bf16')
    for wrong in (reference_core(q / 4, k, v, bias), reference_core(q, k, v)):
        with pytest.raises(AssertionError):
            close(out, wrong, TOL[torch.bfloat16], 'wrong')


def test_auto_picks_the_documented_form():
    assert select_attn_impl('cpu', torch.bfloat16, 'bias_grad') == 'explicit'
    assert select_attn_impl('cpu', torch.bfloat16, 'frozen_bias') == 'explicit'
    assert select_attn_impl('cpu', torch.bfloat16, 'no_bias') == 'explicit'
    assert select_attn_impl('cpu', torch.bfloat16, 'inference') == 'sdpa'
    for case in ('bias_grad', 'frozen_bias', 'no_bias', 'inference'):
        assert select_attn_impl('cpu', torch.float32, case) == 'sdpa'
        assert select_attn_impl('cuda', torch.bfloat16, case) == 'sdpa'
        assert select_attn_impl('cuda', torch.float16, case) == 'sdpa'
    assert set(DEFAULT_FORMS.values()) <= {'sdpa', 'explicit'}
    with pytest.raises(ValueError, match="'training' is not one of"):
        select_attn_impl('cpu', torch.float32, 'training')


def test_attention_case():
    q = torch.randn(1, 2, 3, 4, requires_grad=True)
    table = torch.randn(2, 3, 3, requires_grad=True)
    assert attention_case(q, q, q, table * 1) == 'bias_grad'
    assert attention_case(q, q, q, table.detach()) == 'frozen_bias'
    assert attention_case(q, q, q, None) == 'no_bias'
    assert attention_case(q.detach(), q.detach(), q.detach(), table.detach()) == 'inference'
    with torch.no_grad():
        assert attention_case(q, q, q, table * 1) == 'inference'


def count_sdpa_calls(monkeypatch) -> list:
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', counting)
    return calls


@pytest.mark.parametrize('attn_impl,amp,grad,expected_sdpa', [
    ('auto', True, True, False),    # CPU bf16 training with a learnable shared bias
    ('auto', True, False, True),    # CPU bf16 inference: fused SDPA
    ('auto', False, True, True),    # CPU fp32 training
    ('explicit', False, False, False),
    ('sdpa', True, True, True),
])
def test_backbone_takes_the_selected_form(monkeypatch, attn_impl, amp, grad, expected_sdpa):
    vit = BEiTViT(arch=TINY, img_size=8, patch_size=2, use_shared_rel_pos_bias=True,
                  attn_impl=attn_impl)
    assert all(block.attn.attn_impl == attn_impl for block in vit.blocks)
    calls = count_sdpa_calls(monkeypatch)
    with torch.set_grad_enabled(grad), torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
        vit(torch.randn(2, 3, 8, 8))
    assert bool(calls) == expected_sdpa and len(calls) in (0, TINY['num_layers'])


def test_attn_impl_from_a_config_and_a_wrong_value():
    from beitlab.registry import MODELS
    from beitlab.utils.setup_env import register_all_modules
    register_all_modules()
    vit = MODELS.build(dict(type='BEiTViT', arch=TINY, img_size=8, patch_size=2,
                            attn_impl='explicit'))
    assert [b.attn.attn_impl for b in vit.blocks] == ['explicit'] * TINY['num_layers']
    with pytest.raises(ValueError, match=r"attn_impl='flash' is not one of \('auto', 'sdpa', 'explicit'\)"):
        BEiTViT(arch=TINY, img_size=8, patch_size=2, attn_impl='flash')
    with pytest.raises(ValueError, match="attention impl 'flash' is not one of"):
        biased_attention(*(torch.randn(1, 1, 2, 4), ) * 3, impl='flash')
