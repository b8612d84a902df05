"""The fast path: one config key (``fast_path = True``) or flag (``--fast``) for the speed
options that pay on a small model, where element-wise work, casts, the optimizer and
Python overhead, not the matrix products, take most of a step.

``tools/train.py`` and ``tools/analysis_tools/benchmark.py`` call
:func:`apply_fast_path` on the loaded config (``--fast`` does what the key does), before
anything is built. It edits the config; every piece is an option that also exists on its
own (``docs/performance.md``, "Fast path", has the measured gain of each):

- ``bf16``: bfloat16 autocast through ``AutocastOptimWrapper`` (a plain ``OptimWrapper``
  only; skipped on a CPU without native bf16 and on a GPU without bf16);
- ``fused_optimizer``: ``optimizer.fused=True`` for ``AdamW`` / ``Adam``;
- ``tokenizer_bf16``: the frozen tokenizer of a ``VisualTokenTarget`` under bf16 autocast;
- ``exact_masks``: ``BlockwiseMaskGenerator(exact=True)`` in the training pipeline, so every
  image masks ``num_masking_patches`` patches (official BEiT can stop a few short) and the
  compiled loss sees the same shapes at every step;
- ``compile``: ``CompiledLossHook``, BEiT's backbone + head + loss as one ``torch.compile``
  call (``beitlab/engine/compiled_loss.py``; falls back to eager with one warning).

``fast_path = dict(compile=False)`` (or ``--cfg-options fast_path.compile=False``) keeps
the fast path but leaves the named pieces out; ``fast_path = False`` turns it off.
"""
from typing import Any, Dict, List, Optional, Union

import torch
from mmengine.config import Config, ConfigDict

__all__ = ['FAST_PATH_KEY', 'FAST_PATH_PIECES', 'COMPILED_LOSS_HOOK', 'fast_path_pieces',
           'apply_fast_path', 'bf16_supported']

FAST_PATH_KEY = 'fast_path'
FAST_PATH_PIECES = ('bf16', 'fused_optimizer', 'tokenizer_bf16', 'exact_masks', 'compile')
COMPILED_LOSS_HOOK = 'beitlab.CompiledLossHook'
_FUSED_OPTIMIZERS = ('AdamW', 'Adam')


def _short(type_name: Any) -> str:
    return str(type_name).split('.')[-1]


def fast_path_pieces(value: Union[bool, dict, None]) -> Dict[str, bool]:
    """The pieces a ``fast_path`` value switches on: ``True`` all of
    :data:`FAST_PATH_PIECES`, ``False`` / None none, a dict all but those it sets to False.

    Raises:
        ValueError: a dict key that is not a piece, or a value of another type.
    """
    if value is None or value is False:
        return {name: False for name in FAST_PATH_PIECES}
    if value is True:
        return {name: True for name in FAST_PATH_PIECES}
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(FAST_PATH_PIECES))
        if unknown:
            raise ValueError(f'{FAST_PATH_KEY}: unknown piece(s) {unknown}; expected a dict with '
                             f'keys among {list(FAST_PATH_PIECES)} (True/False each)')
        return {name: bool(value.get(name, True)) for name in FAST_PATH_PIECES}
    raise ValueError(f'{FAST_PATH_KEY}={value!r}: expected True, False or a dict of pieces '
                     f'{list(FAST_PATH_PIECES)} -> bool')


def bf16_supported(device_type: str) -> bool:
    """Whether ``device_type`` computes bfloat16 natively (CPU: AVX512-BF16 or AMX, as
    oneDNN reports it; CUDA: ``torch.cuda.is_bf16_supported``)."""
    if device_type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    probe = getattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', None)
    return bool(probe()) if probe is not None else False


def _enable_bf16(cfg: Config, device_type: str) -> Optional[str]:
    wrapper = cfg.get('optim_wrapper')
    if not isinstance(wrapper, dict):
        return None
    kind = _short(wrapper.get('type', 'OptimWrapper'))
    if kind == 'AutocastOptimWrapper':
        return None  # already autocasts (its dtype is the config's choice)
    if kind != 'OptimWrapper':
        return None
    if not bf16_supported(device_type):
        return f'bf16 skipped: this {device_type.upper()} has no native bfloat16'
    wrapper.type = 'beitlab.AutocastOptimWrapper'
    wrapper.dtype = 'bfloat16'
    return 'bf16 autocast (AutocastOptimWrapper)'


def _enable_fused_optimizer(cfg: Config) -> Optional[str]:
    wrapper = cfg.get('optim_wrapper')
    optimizer = wrapper.get('optimizer') if isinstance(wrapper, dict) else None
    if not isinstance(optimizer, dict) or _short(optimizer.get('type')) not in _FUSED_OPTIMIZERS:
        return None
    if optimizer.get('fused') or optimizer.get('foreach') is not None:
        return None  # the config chose its kernel
    optimizer.fused = True
    return f'fused {_short(optimizer.type)}'


def _enable_tokenizer_bf16(cfg: Config) -> Optional[str]:
    model = cfg.get('model')
    target = model.get('target_generator') if isinstance(model, dict) else None
    if not isinstance(target, dict) or _short(target.get('type')) != 'VisualTokenTarget':
        return None
    if target.get('bf16'):
        return None
    target.bf16 = True
    return 'bf16 tokenizer'


def _enable_exact_masks(cfg: Config) -> Optional[str]:
    loader = cfg.get('train_dataloader')
    dataset = loader.get('dataset') if isinstance(loader, dict) else None
    pipeline = dataset.get('pipeline') if isinstance(dataset, dict) else None
    changed = 0
    for step in pipeline or ():
        generator = step.get('mask_generator') if isinstance(step, dict) else None
        if isinstance(generator, dict) and _short(generator.get('type')) == 'BlockwiseMaskGenerator' \
                and not generator.get('exact', False):
            generator['exact'] = True
            changed += 1
    return 'exact mask counts (BlockwiseMaskGenerator exact=True)' if changed else None


def _enable_compile(cfg: Config) -> Optional[str]:
    model = cfg.get('model')
    if not isinstance(model, dict) or _short(model.get('type')) != 'BEiT':
        return None  # the compiled loss is BEiT's
    hooks = list(cfg.get('custom_hooks') or [])
    if any(isinstance(h, dict) and _short(h.get('type')) == _short(COMPILED_LOSS_HOOK)
           for h in hooks):
        return None
    hooks.append(ConfigDict(type=COMPILED_LOSS_HOOK))
    cfg.custom_hooks = hooks
    return 'compiled loss (CompiledLossHook)'


def apply_fast_path(cfg: Config, enable: Optional[bool] = None,
                    device_type: Optional[str] = None) -> List[str]:
    """Switch the fast path's pieces on in ``cfg`` when ``enable`` is true or the config sets
    ``fast_path`` (``True`` or a dict of pieces, see :func:`fast_path_pieces`).

    ``enable=True`` (``--fast``) with a config dict keeps the dict's choices. Pieces that do
    not apply to the config (no AdamW, no visual-token target, no block-wise masks, a model
    other than BEiT) are left out, and ``cfg.fast_path`` is set to what was asked.

    Args:
        device_type: where training runs (default: ``'cuda'`` when available, else ``'cpu'``).
    Returns:
        one line per change made (for the log); empty when the fast path is off.
    """
    value = cfg.get(FAST_PATH_KEY, None)
    if enable and not isinstance(value, dict):
        value = True
    pieces = fast_path_pieces(value)
    if not any(pieces.values()):
        return []
    cfg[FAST_PATH_KEY] = value
    device_type = device_type or ('cuda' if torch.cuda.is_available() else 'cpu')
    steps = dict(bf16=lambda: _enable_bf16(cfg, device_type),
                 fused_optimizer=lambda: _enable_fused_optimizer(cfg),
                 tokenizer_bf16=lambda: _enable_tokenizer_bf16(cfg),
                 exact_masks=lambda: _enable_exact_masks(cfg),
                 compile=lambda: _enable_compile(cfg))
    changes = []
    for name in FAST_PATH_PIECES:
        if pieces[name]:
            change = steps[name]()
            if change:
                changes.append(change)
    return changes
