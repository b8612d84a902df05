"""Checks shared by tokenizers and the masked-image-modeling code that consumes their tokens."""
from typing import Sequence, Tuple

from beitlab.checkpoint import load_checkpoint_file, select_prefix, unwrap_state_dict

__all__ = ['check_token_grid', 'check_vocab_size', 'load_tokenizer_state_dict']


def check_token_grid(tokens_grid: Sequence[int], patch_grid: Sequence[int]) -> None:
    """Raise ``ValueError`` unless the token grid equals the ViT patch grid.

    BEiT predicts one visual token per image patch (Bao et al., 2021, Sec. 2.1), so the
    tokenizer view (e.g. 112 px with 8x downsampling -> 14 x 14) must give exactly the ViT's
    patch grid (e.g. 224 px with 16 px patches -> 14 x 14).

    Args:
        tokens_grid: (h, w) of the tokenizer's output.
        patch_grid: (H/P, W/P) of the ViT.
    """
    tokens_grid, patch_grid = tuple(int(v) for v in tokens_grid), tuple(int(v) for v in patch_grid)
    if tokens_grid != patch_grid:
        raise ValueError(
            f'visual token grid {tokens_grid} does not match the ViT patch grid {patch_grid}: '
            'BEiT needs one token per patch; set the tokenizer input size to '
            'patch_grid * tokenizer.downsample (e.g. 112 px with downsample 8 for 224 px and '
            '16 px patches)')


def check_vocab_size(tokenizer_vocab_size: int, num_classes: int) -> None:
    """Raise ``ValueError`` unless a MIM head predicts exactly the tokenizer's vocabulary."""
    if int(tokenizer_vocab_size) != int(num_classes):
        raise ValueError(
            f'the tokenizer has a vocabulary of {tokenizer_vocab_size} codes but the MIM head '
            f'predicts {num_classes} classes; set the head num_classes to {tokenizer_vocab_size}')


def load_tokenizer_state_dict(path: str, prefixes: Tuple[str, ...] = ('tokenizer.',)) -> dict:
    """Read a tokenizer's state dict from ``path`` (``.pth`` with ``weights_only=True``, or
    ``.safetensors``).

    The state dict is found by the one unwrap rule (:mod:`beitlab.checkpoint.unwrap`: a bare
    state dict, or one under ``state_dict`` / ``model`` / ``module`` / ``ema``, e.g. an
    mmengine training checkpoint or an official ``{'model': ...}`` file); a prefix shared by
    every key (``tokenizer.`` from ``TokenizerTrainer`` checkpoints) is stripped.
    """
    state_dict = unwrap_state_dict(load_checkpoint_file(path), repr(path))
    for prefix in prefixes:
        if all(k.startswith(prefix) for k in state_dict):
            state_dict = select_prefix(state_dict, prefix, repr(path))
    return dict(state_dict)
