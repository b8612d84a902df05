"""Common behaviour of visual tokenizers: checkpoint loading, freezing, the grid check,
and the error that says how to get a tokenizer checkpoint that is missing."""
import contextlib
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModule

from beitlab.utils.cli import HintedError
from beitlab.utils.strict_load import StrictLoadError, load_state_dict_strict

from .utils import check_token_grid, load_tokenizer_state_dict

__all__ = ['BaseTokenizer', 'TokenizerCheckpointNotFoundError', 'TokenizerCheckpointMismatchError',
           'missing_checkpoint_error']

_REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
# The configs that train each tokenizer family, by class name (checked along the MRO, so a
# subclass of DVAE without its own entry gets the DVAE advice).
_TRAINING_CONFIG_DIRS = {'PerceptualDVAE': 'configs/peco', 'VQKD': 'configs/vqkd',
                         'DVAE': 'configs/dvae'}
_DVAE_8192_CONFIG = 'configs/dvae/dvae_8192-112px_imagenet.py'
_DVAE_8192_CHECKPOINT = 'checkpoints/dvae_8192-112px_imagenet.pth'
_MIM_DVAE_8192_CONFIG = 'configs/beit/mim_vit-b_dvae-8192.py'


class TokenizerCheckpointNotFoundError(HintedError, FileNotFoundError):
    """A tokenizer's ``checkpoint`` file does not exist; ``hints`` say how to make one."""


class TokenizerCheckpointMismatchError(StrictLoadError, ValueError):
    """A tokenizer's ``checkpoint`` does not fit it (another ``vocab_size``, width, a missing
    or an unexpected tensor): one table of the differences (a ``ValueError`` too, since the
    tokenizer's config values are what differ)."""


def _class_names(tokenizer: Union[type, str]) -> List[str]:
    if isinstance(tokenizer, type):
        return [c.__name__ for c in tokenizer.__mro__]
    return [str(tokenizer).rsplit('.', 1)[-1]]


def _final_checkpoint(config: str) -> str:
    """The file the last iteration (or epoch) of ``config`` writes in its work dir."""
    stem = osp.splitext(osp.basename(config))[0]
    last = 'iter_<N>.pth'
    try:
        from mmengine.config import Config
        train_cfg = Config.fromfile(osp.join(_REPO_ROOT, config)).get('train_cfg') or {}
        if 'max_iters' in train_cfg:
            last = f'iter_{train_cfg["max_iters"]}.pth'
        elif 'max_epochs' in train_cfg:
            last = f'epoch_{train_cfg["max_epochs"]}.pth'
    except Exception:  # noqa: BLE001 - only a hint: keep the placeholder
        pass
    return f'work_dirs/{stem}/{last}'


def _matching_config(folder: str, stem: str) -> Optional[str]:
    """The config of ``folder`` that writes the checkpoint named ``stem``: ``<stem>.py``,
    else the only ``<family>_*<dataset>.py`` (``vqkd_fashion-mnist`` ->
    ``vqkd_vit-fmnist_fashion-mnist.py``); None when there is no single match."""
    if osp.isfile(osp.join(_REPO_ROOT, folder, f'{stem}.py')):
        return f'{folder}/{stem}.py'
    if '_' not in stem or not osp.isdir(osp.join(_REPO_ROOT, folder)):
        return None
    family, dataset = stem.split('_', 1)[0], stem.rsplit('_', 1)[-1]
    found = [f for f in sorted(os.listdir(osp.join(_REPO_ROOT, folder)))
             if f.startswith(f'{family}_') and f.endswith(f'{dataset}.py')]
    return f'{folder}/{found[0]}' if len(found) == 1 else None


def _training_hints(names: Sequence[str], path: str) -> List[str]:
    """How to train and extract a tokenizer of a trainable family (DVAE, PeCo, VQ-KD)."""
    folder = next((_TRAINING_CONFIG_DIRS[n] for n in names if n in _TRAINING_CONFIG_DIRS), None)
    if folder is None:
        return []
    config = _matching_config(folder, osp.splitext(osp.basename(path))[0])
    if config is None:
        config, run = f'{folder}/<config>.py', 'work_dirs/<config>/iter_<N>.pth'
    else:
        run = _final_checkpoint(config)
    return [f'train it with its config and extract the tokenizer: '
            f'`python tools/train.py {config}`, then `python '
            f'tools/model_converters/extract_tokenizer.py {run} {path} --config {config}`']


def _dalle_hints(path: str, config_key: Optional[str]) -> List[str]:
    """The three ways to get DALL-E-compatible tokenizer weights."""
    random_option = (f'`--cfg-options {config_key}=None`' if config_key
                     else '`checkpoint=None`')
    return [
        "(1) convert OpenAI's released DALL-E encoder.pkl: save its state dict in a trusted "
        'environment with the dall_e package (command in the docstring of '
        'tools/model_converters/dalle_to_beitlab.py), then `python '
        f'tools/model_converters/dalle_to_beitlab.py dalle_encoder_sd.pth {path}`',
        "(2) train beitlab's own 8192-code tokenizer: "
        f'`python tools/train.py {_DVAE_8192_CONFIG}`, then `python '
        f'tools/model_converters/extract_tokenizer.py {_final_checkpoint(_DVAE_8192_CONFIG)} '
        f'{_DVAE_8192_CHECKPOINT} --config {_DVAE_8192_CONFIG}`, then pre-train with '
        f'`python tools/train.py {_MIM_DVAE_8192_CONFIG}` (ViT-B/16; it swaps this DALL-E '
        'tokenizer for that DVAE)',
        f'(3) for benchmarking only, random tokenizer weights: {random_option}',
    ]


# Resampling and float rounding may step this far outside [0, 1].
UNIT_RANGE_TOLERANCE = 1e-3


def check_unit_range(img: torch.Tensor, owner: str) -> None:
    """Every tokenizer reads its view as RGB floats in [0, 1] (registry contract); a view
    outside that range (beyond :data:`UNIT_RANGE_TOLERANCE`) is an error naming the range
    found and its likely cause."""
    low, high = (float(v) for v in torch.aminmax(img.detach().float()))
    if low >= -UNIT_RANGE_TOLERANCE and high <= 1 + UNIT_RANGE_TOLERANCE:
        return
    if low < 0:
        cause = ('it looks normalised with a mean and std: the tokenizer view must not be '
                 'normalised (data preprocessor tok_mean=(0, 0, 0), tok_std=(255, 255, 255))')
    elif high > 2:
        cause = ('it looks like 0-255 pixel values: divide by 255 (data preprocessor '
                 'tok_mean=(0, 0, 0), tok_std=(255, 255, 255))')
    else:
        cause = 'values slightly above 1: clamp the view to [0, 1]'
    raise ValueError(f'{owner} expects its input in [0, 1] (RGB floats), got values in '
                     f'[{low:.4g}, {high:.4g}]; {cause}')


def missing_checkpoint_error(tokenizer: Union[type, str], path: str,
                             config_key: Optional[str] = None
                             ) -> TokenizerCheckpointNotFoundError:
    """The error for a tokenizer checkpoint ``path`` that does not exist.

    Args:
        tokenizer: the tokenizer class (or its registered name).
        path: the checkpoint as configured.
        config_key: the config key that holds ``path`` (e.g.
            ``model.target_generator.checkpoint``), named in the message and the hints.
    """
    names = _class_names(tokenizer)
    where = f' (config key {config_key})' if config_key else ''
    relative = '' if osp.isabs(osp.expanduser(str(path))) else \
        f' (relative to the current directory {os.getcwd()})'
    message = (f'{names[0]} tokenizer checkpoint {str(path)!r}{where} does not '
               f'exist{relative}.')
    if 'DALLEEncoder' in names:
        message += ' The DALL-E weights are not shipped; three ways forward:'
        hints = _dalle_hints(path, config_key)
    else:
        hints = _training_hints(names, path)
        if config_key:
            hints.append(f'for benchmarking only, random tokenizer weights: '
                         f'`--cfg-options {config_key}=None`')
    if config_key:
        hints.append(f'or point {config_key} at weights you already have: '
                     f'`--cfg-options {config_key}=PATH`')
    return TokenizerCheckpointNotFoundError(message, hints)


class BaseTokenizer(BaseModule):
    """Base of every tokenizer: ``img [B, 3, h, w] in [0, 1] -> tokens [B, h/d, w/d] int64``.

    A tokenizer given a ``checkpoint`` is frozen by default (BEiT, Bao et al. 2021,
    arXiv 2106.08254, Sec. 2.4: the tokenizer is learned first and stays fixed while the
    ViT is pre-trained): its weights are loaded with ``torch.load(weights_only=True)`` and
    strictly (a missing, unexpected or differently shaped tensor raises
    :class:`TokenizerCheckpointMismatchError` with one table), it stays in eval mode whatever
    ``train()`` is called with, no parameter requires grad, and ``get_tokens`` runs under
    ``torch.no_grad``. It is called inside the model's forward, so it runs on the training
    device.

    Args:
        vocab_size: number of codes.
        downsample: input pixels per token along each side.
        checkpoint: weights to load (a state dict, optionally under ``state_dict``); a
            missing file raises :class:`TokenizerCheckpointNotFoundError`, which says how
            to make one; weights that do not fit raise
            :class:`TokenizerCheckpointMismatchError`.
        frozen: freeze; defaults to ``checkpoint is not None``.
        bf16: run the network under bf16 autocast when frozen (the code choice itself is
            computed in float32).
        init_cfg: mmengine init config.
    """

    def __init__(self, vocab_size: int, downsample: int, checkpoint: Optional[str] = None,
                 frozen: Optional[bool] = None, bf16: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.vocab_size = int(vocab_size)
        self.downsample = int(downsample)
        self.checkpoint = checkpoint
        self.frozen = checkpoint is not None if frozen is None else frozen
        self.bf16 = bf16

    def _finish_init(self) -> None:
        """Subclasses call this at the end of ``__init__``: load weights, then freeze."""
        if self.checkpoint is not None:
            if not osp.isfile(osp.expanduser(str(self.checkpoint))):
                raise missing_checkpoint_error(type(self), self.checkpoint)
            state_dict = load_tokenizer_state_dict(self.checkpoint)
            load_state_dict_strict(
                self, state_dict, str(self.checkpoint),
                target=f'this {type(self).__name__} (vocab_size={self.vocab_size})',
                extra_hints=['build the tokenizer with the config it was trained with (a file '
                             'written by tools/model_converters/extract_tokenizer.py holds it '
                             "in meta['tokenizer'])"],
                error_type=TokenizerCheckpointMismatchError)
            self._is_init = True  # weights come from the checkpoint, not init_cfg
        if self.frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> 'BaseTokenizer':
        return super().train(mode and not self.frozen)

    def init_weights(self) -> None:
        if self.checkpoint is None:
            super().init_weights()

    def autocast(self, img: torch.Tensor):
        """bf16 autocast on the input's device when frozen and ``bf16`` is set."""
        if self.frozen and self.bf16:
            return torch.autocast(device_type=img.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _get_tokens(self, img: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_tokens(self, img: torch.Tensor,
                   expected_grid: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Visual tokens of ``img: [B, 3, h, w]`` float in [0, 1] (RGB).

        Returns ``[B, h/downsample, w/downsample]`` int64. ``expected_grid`` (the ViT patch
        grid) is checked against the token grid; a mismatch raises ``ValueError``.
        """
        if img.dim() != 4:
            raise ValueError(f'{type(self).__name__}.get_tokens expects [B, C, h, w], '
                             f'got shape {tuple(img.shape)}')
        check_unit_range(img, type(self).__name__)
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            tokens = self._get_tokens(img)
        if expected_grid is not None:
            check_token_grid(tokens.shape[-2:], expected_grid)
        return tokens.long()

    def extra_repr(self) -> str:
        return f'vocab_size={self.vocab_size}, downsample={self.downsample}, frozen={self.frozen}'


