"""The mmengine ``Runner`` with strict ``load_from`` and ``--resume``.

mmengine's ``Runner.load_checkpoint`` loads with ``strict=False``: a checkpoint of another
shape, or with missing or unexpected keys, is a warning and training goes on with those
tensors at random initialisation; resuming a checkpoint of another width loads the
optimizer moments by position and fails inside the first optimizer step. ``tools/train.py``
and ``tools/test.py`` build :class:`BeitlabRunner` instead, which loads the checkpoint's
``state_dict`` with :func:`beitlab.utils.strict_load.load_state_dict_strict` (after the
model's own layout adaptations) and, when resuming, compares every saved optimizer state
tensor with the parameter it belongs to, so that both fail before the first iteration with
a table naming the parameters.

Config key (top level), for differences that are meant::

    load_from_allow = dict(missing=['head.*'], unexpected=[], shape_mismatch=[])

Patterns are globs or ``'re:'`` + a regular expression, matched against the model's keys
(``backbone.blocks.0.attn.qkv.weight``); they apply to ``load_from``, to ``tools/test.py``'s
checkpoint and to the model weights of ``--resume``. The optimizer state of a resumed run
must always fit.
"""
import re
from collections import OrderedDict
from typing import Any, Callable, List, Mapping, Tuple, Union

from mmengine.config import Config, ConfigDict
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

from beitlab.checkpoint.model_state import model_state_dict
from beitlab.utils.optimizer_state import check_optimizer_state
from beitlab.utils.strict_load import Allowance, AllowHint, load_state_dict_strict

__all__ = ['BeitlabRunner', 'LOAD_FROM_ALLOW_KEY']

LOAD_FROM_ALLOW_KEY = 'load_from_allow'


def _revise(state: Mapping[str, Any], revise_keys: List[Tuple[str, str]]) -> Mapping[str, Any]:
    """mmengine's key revision (``module.`` stripped by default), keeping ``_metadata``."""
    metadata = getattr(state, '_metadata', None)
    for pattern, repl in revise_keys:
        state = OrderedDict((re.sub(pattern, repl, k), v) for k, v in state.items())
    if metadata is not None:
        state._metadata = metadata  # type: ignore[attr-defined]
    return state


class BeitlabRunner(Runner):
    """``Runner`` whose ``load_checkpoint`` (``load_from``, ``tools/test.py``) and ``resume``
    are strict; differences pass only when the config's ``load_from_allow`` allows them
    (see the module docstring)."""

    @classmethod
    def from_cfg(cls, cfg: Union[Config, ConfigDict, dict]) -> 'BeitlabRunner':
        """As ``Runner.from_cfg``; a malformed ``load_from_allow`` fails here, before building."""
        Allowance.from_config(cfg.get(LOAD_FROM_ALLOW_KEY), LOAD_FROM_ALLOW_KEY)
        return super().from_cfg(cfg)

    def _load_from_allowance(self) -> Allowance:
        return Allowance.from_config(self.cfg.get(LOAD_FROM_ALLOW_KEY), LOAD_FROM_ALLOW_KEY)

    def resume(self, filename: str, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True,
               map_location: Union[str, Callable] = 'default') -> None:
        """As ``Runner.resume``; the model and (with ``resume_optimizer``) the optimizer
        state are checked in :meth:`load_checkpoint`, before anything is restored."""
        self._resume_checks_optimizer = resume_optimizer
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        finally:
            self._resume_checks_optimizer = False

    def load_checkpoint(self, filename: str, map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]) -> dict:  # noqa: B006 (mmengine's)
        """Load ``filename``'s weights into the model strictly and return the checkpoint.

        The weights are found as every beitlab loader finds them
        (:func:`beitlab.checkpoint.model_state.model_state_dict`: ``state_dict`` / ``model`` /
        ``module`` / ``ema``; an official BEiT file converted to beitlab's names).

        ``strict=True`` also ignores ``load_from_allow``; the default (mmengine's
        ``strict=False``) allows exactly what ``load_from_allow`` allows.

        Raises:
            StrictLoadError: the weights do not fit the model (one table of every difference).
            OptimizerStateError: resuming, and the optimizer state does not fit.
        """
        allowance = Allowance() if strict else self._load_from_allowance()
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        if not isinstance(checkpoint, Mapping):
            raise TypeError(f'checkpoint {filename!r} holds a {type(checkpoint).__name__}, '
                            'not a dict of tensors or a training checkpoint')
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        # the one unwrap rule; an official {'model': ...} file gets beitlab's names
        state = model_state_dict(checkpoint, repr(filename), model.state_dict().keys()).state
        resuming = getattr(self, '_resume_checks_optimizer', False)
        note = ('--resume continues a run: resume with the config the checkpoint was written '
                'with' if resuming else
                'to fine-tune from a pre-trained checkpoint, give it to the model\'s own loader '
                'instead (ImageClassifier pretrained=..., or a backbone init_cfg '
                'BEiTPretrained), which drops the pre-training head by rule')
        load_state_dict_strict(
            model, _revise(state, revise_keys), filename, allowance.missing, allowance.unexpected,
            allowance.shape_mismatch,
            allow_hint=AllowHint(LOAD_FROM_ALLOW_KEY + ' = dict({}) in the config', note=note))
        if resuming and 'optimizer' in checkpoint:
            if not isinstance(self.optim_wrapper, (OptimWrapper, OptimWrapperDict)):
                self.optim_wrapper = self.build_optim_wrapper(self.optim_wrapper)
            check_optimizer_state(self.optim_wrapper, checkpoint['optimizer'], model, filename)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename} (strict)')
        return checkpoint
