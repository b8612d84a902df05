"""Scaled dot-product attention with an additive bias, ``softmax(q k^T / sqrt(d) + bias) v``
(BEiT Sec. 2.5: the relative position bias is added to the attention logits), in two forms
that give the same values and gradients up to rounding:

- ``'sdpa'``: :func:`torch.nn.functional.scaled_dot_product_attention` with the bias as
  its float ``attn_mask``. PyTorch picks the kernel: a fused one when the bias needs no
  gradient (inference, frozen tables); on CUDA also when it does (the efficient-attention
  kernel returns the bias gradient); on CPU a bias that needs a gradient sends it to the
  generic math path, which upcasts bf16 inputs to fp32.
- ``'explicit'``: ``(q * scale) @ k^T + bias``, softmax, ``@ v`` as separate ops, all in
  the dtype of ``q`` (the autocast dtype under autocast), as official BEiT writes it
  (``beit/modeling_finetune.py``, ``Attention.forward``). The softmax runs in that dtype
  too: CPU autocast leaves softmax in bf16 (CUDA autocast would run it in fp32), torch's
  CPU kernel accumulates in fp32 internally, and its probabilities are rounded to bf16 for
  ``@ v`` anyway, so an fp32 softmax changes the error by nothing measurable and only
  costs time.

``'auto'`` picks a form per (device type, compute dtype, attention case) from the table
:data:`DEFAULT_FORMS`, measured with ``tools/analysis_tools/benchmark_attention.py``.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['ATTN_IMPLS', 'ATTN_CASES', 'DEFAULT_FORMS', 'attention_case', 'select_attn_impl',
           'explicit_attention', 'biased_attention']

ATTN_IMPLS = ('auto', 'sdpa', 'explicit')
# What autograd needs from one attention call: the bias gradient (pre-training, fine-tuning
# with a learnable table), input gradients only (a frozen bias table, or a bias-free
# layer), or nothing (inference / torch.no_grad).
ATTN_CASES = ('bias_grad', 'frozen_bias', 'no_bias', 'inference')

# The form 'auto' takes; every key not listed takes 'sdpa'. Measured with
# tools/analysis_tools/benchmark_attention.py on an Intel Xeon with AMX bf16 (2 cores,
# torch 2.13 CPU): one BEiTAttention layer, fwd+bwd for the training cases and fwd under
# no_grad for 'inference', median time of 'explicit' over that of 'sdpa', at the ViT-B
# shape (8 x 197 tokens, 12 heads x 64) / the Fashion-MNIST config shape (64 x 65 tokens,
# 3 x 64). Rough figures from a shared machine: 2 threads when it was quiet, 1 thread
# (CPU time) when it was loaded; 2 threads under load gave the same picture for
# 'bias_grad' and 'inference' and about 1.05 for ViT-B 'frozen_bias' / 'no_bias'.
#   cpu bf16 bias_grad    0.56-0.74 / 0.67-0.74  SDPA's math path upcasts bf16 to fp32
#   cpu bf16 frozen_bias  0.70 / 0.34-0.36       the CPU fused backward is slow in bf16
#   cpu bf16 no_bias      0.70 / 0.36            (the same fused backward)
#   cpu bf16 inference    1.14 / 1.15 -> SDPA    (its fused forward wins)
#   cpu fp32 training     0.93-1.08   -> SDPA    (a tie)
#   cpu fp32 inference    1.16-1.23   -> SDPA
# An fp32 softmax inside the explicit form cost 5-20 % more and changed no error.
# CUDA: SDPA everywhere; with a bias that needs a gradient it takes the efficient-attention
# kernel, which returns that gradient (not measured: no GPU was at hand).
DEFAULT_FORMS: Dict[Tuple[str, torch.dtype, str], str] = {
    ('cpu', torch.bfloat16, 'bias_grad'): 'explicit',
    ('cpu', torch.bfloat16, 'frozen_bias'): 'explicit',
    ('cpu', torch.bfloat16, 'no_bias'): 'explicit',
}


def attention_case(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor]) -> str:
    """The entry of :data:`ATTN_CASES` that describes one attention call."""
    tensors = (q, k, v) if bias is None else (q, k, v, bias)
    if not torch.is_grad_enabled() or not any(t.requires_grad for t in tensors):
        return 'inference'
    if bias is None:
        return 'no_bias'
    return 'bias_grad' if bias.requires_grad else 'frozen_bias'


def select_attn_impl(device_type: str, dtype: torch.dtype, case: str) -> str:
    """The form ``'auto'`` takes for ``(device_type, dtype, case)``: ``'sdpa'`` or ``'explicit'``."""
    if case not in ATTN_CASES:
        raise ValueError(f'attention case {case!r} is not one of {ATTN_CASES}')
    return DEFAULT_FORMS.get((device_type, dtype, case), 'sdpa')


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor] = None,
                       softmax_dtype: Optional[torch.dtype] = None) -> Tensor:
    """``softmax((q * d^-0.5) @ k^T + bias) @ v`` as separate ops in the dtype of ``q``.

    Args:
        q: ``[B, heads, Q, d]``; k, v: ``[B, heads, T, d]``.
        bias: broadcastable to ``[B, heads, Q, T]`` (cast to the scores' dtype), or None.
        softmax_dtype: dtype of the softmax (default: that of the scores); the
            probabilities return to the dtype of ``v`` for the last product.
    Returns:
        ``[B, heads, Q, d]``.
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if bias is not None:
        scores = scores + bias.to(scores.dtype)
    if softmax_dtype is None or softmax_dtype == scores.dtype:
        probs = scores.softmax(dim=-1)
    else:
        probs = torch.softmax(scores, dim=-1, dtype=softmax_dtype).to(v.dtype)
    return probs @ v


def biased_attention(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor] = None,
                     impl: str = 'auto') -> Tensor:
    """``softmax(q k^T / sqrt(d) + bias) v`` in the form ``impl`` (one of :data:`ATTN_IMPLS`).

    Shapes as :func:`explicit_attention`; ``'auto'`` looks the form up with
    :func:`select_attn_impl` for the device, the dtype of ``q`` and :func:`attention_case`.
    """
    if impl == 'auto':
        impl = select_attn_impl(q.device.type, q.dtype, attention_case(q, k, v, bias))
    if impl == 'sdpa':
        mask = None if bias is None else bias.to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if impl == 'explicit':
        return explicit_attention(q, k, v, bias)
    raise ValueError(f'attention impl {impl!r} is not one of {ATTN_IMPLS}')
