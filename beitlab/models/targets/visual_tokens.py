"""Visual-token targets of BEiT (Bao et al. 2021, arXiv 2106.08254, Sec. 2.1.2 visual
tokens and Sec. 2.3 masked image modeling; official code ``beit/modeling_pretrain.py``).

A frozen tokenizer maps the tokenizer view of each image to one token id per ViT patch;
the MIM head learns to predict the ids of the masked patches.
"""
import os.path as osp
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from beitlab.models.tokenizers.base import missing_checkpoint_error
from beitlab.models.tokenizers.utils import check_token_grid
from beitlab.registry import TARGET_GENERATORS, TOKENIZERS

__all__ = ['VisualTokenTarget']

# Where BEiT configs hold this module: the key named when its checkpoint is missing.
CONFIG_KEY = 'model.target_generator'


@TARGET_GENERATORS.register_module()
class VisualTokenTarget(nn.Module):
    """Frozen tokenizer as MIM target: ``img_tok [B, 3, h, w] -> tokens [B, N] int64``.

    The tokenizer is built from a TOKENIZERS config (``checkpoint`` is passed to it, which
    loads its weights with ``weights_only=True``) or taken as a built module. It never
    trains: no parameter requires grad, it stays in eval mode whatever ``train()`` is
    called with, and tokens are computed under ``torch.no_grad``.

    The tokenizer's weights are NOT part of this module's state dict (they come from their
    own checkpoint), so BEiT checkpoints hold only ``backbone.*`` and ``head.*``. A
    checkpoint file that does not exist raises
    :class:`~beitlab.models.tokenizers.base.TokenizerCheckpointNotFoundError` before the
    tokenizer is built; it names the path, the config key
    (``model.target_generator.checkpoint``) and how to make the file.

    Args:
        tokenizer: TOKENIZERS config or module exposing ``vocab_size`` and
            ``get_tokens(img) -> [B, h', w'] int64``.
        checkpoint: tokenizer weights; put into the config as ``checkpoint``.
        bf16: run the tokenizer network under bf16 autocast (its ``bf16`` option).
    """

    def __init__(self, tokenizer: Union[dict, nn.Module], checkpoint: Optional[str] = None,
                 bf16: bool = False) -> None:
        super().__init__()
        if isinstance(tokenizer, dict):
            tokenizer = dict(tokenizer)
            if checkpoint is not None:
                tokenizer['checkpoint'] = checkpoint
            if bf16:
                tokenizer['bf16'] = True
            key = f'{CONFIG_KEY}.checkpoint' if checkpoint is not None \
                else f'{CONFIG_KEY}.tokenizer.checkpoint'
            self._check_checkpoint(tokenizer, key)
            tokenizer = TOKENIZERS.build(tokenizer)
        elif checkpoint is not None:
            raise ValueError('VisualTokenTarget: give checkpoint only with a tokenizer config; '
                             'a built tokenizer must already hold its weights')
        for attr in ('vocab_size', 'get_tokens'):
            if not hasattr(tokenizer, attr):
                raise TypeError(f'VisualTokenTarget: tokenizer {type(tokenizer).__name__} has no '
                                f'{attr!r} (see the TOKENIZERS contract)')
        self.tokenizer = tokenizer
        self.bf16 = bf16
        if bf16 and hasattr(tokenizer, 'bf16'):
            tokenizer.bf16 = True
        if hasattr(tokenizer, 'frozen'):
            tokenizer.frozen = True  # also makes BaseTokenizer run get_tokens under no_grad
        self.tokenizer.requires_grad_(False)
        self.tokenizer.eval()
        self._register_state_dict_hook(self._drop_tokenizer_keys)
        self.register_load_state_dict_post_hook(self._ignore_missing_tokenizer_keys)

    @staticmethod
    def _check_checkpoint(tokenizer_cfg: dict, config_key: str) -> None:
        """Raise the tokenizer's missing-checkpoint error (with the ways to make the file)
        before building it, naming ``config_key``."""
        path = tokenizer_cfg.get('checkpoint')
        if path is None or osp.isfile(osp.expanduser(str(path))):
            return
        cls = tokenizer_cfg.get('type')
        if isinstance(cls, str):
            cls = TOKENIZERS.get(cls) or cls
        raise missing_checkpoint_error(cls, path, config_key)

    @property
    def vocab_size(self) -> int:
        """Number of distinct token ids |V|."""
        return int(self.tokenizer.vocab_size)

    @staticmethod
    def _drop_tokenizer_keys(module: nn.Module, state_dict: dict, prefix: str,
                             local_metadata: dict) -> dict:
        for key in [k for k in state_dict if k.startswith(prefix + 'tokenizer.')]:
            del state_dict[key]
        return state_dict

    @staticmethod
    def _ignore_missing_tokenizer_keys(module: nn.Module, incompatible_keys) -> None:
        missing = incompatible_keys.missing_keys
        missing[:] = [k for k in missing if '.tokenizer.' not in f'.{k}']

    def train(self, mode: bool = True) -> 'VisualTokenTarget':
        super().train(mode)
        self.tokenizer.eval()
        return self

    @torch.no_grad()
    def forward(self, img: Tensor, patch_grid: Optional[Sequence[int]] = None) -> Tensor:
        """img: [B, 3, h, w] tokenizer view -> tokens [B, N] int64, row-major.

        Args:
            patch_grid: the ViT patch grid (H/P, W/P); a different token grid raises
                ``ValueError`` naming both grids.
        """
        tokens = self.tokenizer.get_tokens(img)
        if tokens.dim() != 3:
            raise ValueError(f'{type(self.tokenizer).__name__}.get_tokens must return '
                             f'[B, h, w], got shape {tuple(tokens.shape)}')
        if patch_grid is not None:
            check_token_grid(tokens.shape[-2:], patch_grid)
        return tokens.flatten(1).long()
