"""Per-layer features of a ``BEiTViT`` through its public forward (``out_indices`` / ``out_type``).

The backbone returns the outputs of the layers in ``out_indices`` formatted by ``out_type``.
To read other layers without building a second backbone, :func:`layer_tokens` sets both
attributes for one forward (``out_type='raw'``: ``[B, 1+N, D]`` tokens) and restores them in a
``finally`` block, so the backbone is left exactly as it was. The last layer's tokens are
taken after the final norm (when the backbone has one), the others are the residual stream
after the block, as ``BEiTViT.forward`` gives them.
"""
from typing import List, Sequence, Union

from torch import Tensor, nn

__all__ = ['POOLINGS', 'normalize_layers', 'layer_tokens', 'pool_tokens', 'layer_features']

POOLINGS = ('cls', 'mean', 'none')


def normalize_layers(backbone: nn.Module, layers: Union[int, Sequence[int]]) -> List[int]:
    """Layer indices as ``out_indices`` takes them (0-based, negatives from the end) ->
    0-based indices in ``[0, L)``; an index out of range is a ``ValueError`` naming ``L``."""
    num_layers = int(backbone.num_layers)
    layers = [layers] if isinstance(layers, int) else list(layers)
    if not layers:
        raise ValueError('layers is empty: give at least one layer index, e.g. (-1,) for the last')
    out = []
    for index in layers:
        if not -num_layers <= int(index) < num_layers:
            raise ValueError(f'layer index {index} is out of range for a backbone of {num_layers} '
                             f'layers (expected -{num_layers} <= index < {num_layers})')
        out.append(int(index) % num_layers)
    return out


def layer_tokens(backbone: nn.Module, x: Tensor, layers: Union[int, Sequence[int]]) -> List[Tensor]:
    """Tokens ``[B, 1+N, D]`` (``[B, N, D]`` without CLS) after each layer of ``layers``.

    Args:
        backbone: a ``BEiTViT`` (anything with ``num_layers``, ``out_indices``, ``out_type``
            and a forward that honours them).
        x: ``[B, C, H, W]`` normalised images.
        layers: 0-based layer indices, negatives counting from the end (``-1`` = last).
    Returns:
        one tensor per entry of ``layers``, in that order (repeats allowed).
    """
    indices = normalize_layers(backbone, layers)
    unique = sorted(set(indices))
    saved = (backbone.out_indices, backbone.out_type)
    try:
        backbone.out_indices = list(unique)
        backbone.out_type = 'raw'
        outs = backbone(x)
    finally:
        backbone.out_indices, backbone.out_type = saved
    by_index = dict(zip(unique, outs))
    return [by_index[i] for i in indices]


def pool_tokens(tokens: Tensor, pooling: str, num_extra_tokens: int) -> Tensor:
    """``tokens: [B, T, D]`` -> ``'cls'``: ``[B, D]`` (token 0), ``'mean'``: ``[B, D]`` (mean of
    the patch tokens), ``'none'``: the tokens unchanged."""
    if pooling == 'cls':
        if num_extra_tokens < 1:
            raise ValueError("pooling='cls' needs a backbone with a CLS token "
                             "(with_cls_token=True); use pooling='mean'")
        return tokens[:, 0]
    if pooling == 'mean':
        return tokens[:, num_extra_tokens:].mean(dim=1)
    if pooling == 'none':
        return tokens
    raise ValueError(f'pooling={pooling!r} is not one of {POOLINGS}')


def layer_features(backbone: nn.Module, x: Tensor, layers: Union[int, Sequence[int]] = (-1, ),
                   pooling: str = 'cls') -> List[Tensor]:
    """:func:`layer_tokens` pooled by :func:`pool_tokens`: one ``[B, D]`` (or ``[B, T, D]``
    with ``'none'``) tensor per layer."""
    if pooling not in POOLINGS:
        raise ValueError(f'pooling={pooling!r} is not one of {POOLINGS}')
    extra = int(getattr(backbone, 'num_extra_tokens', 1))
    return [pool_tokens(t, pooling, extra) for t in layer_tokens(backbone, x, layers)]
