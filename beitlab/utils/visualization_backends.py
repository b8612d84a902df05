"""TensorBoard as one more visualisation backend of a config.

mmengine's ``TensorboardVisBackend`` receives everything the ``LocalVisBackend`` does: the
logged scalars (losses, learning rate, ``knn/*``, ``nonfinite/*``, ``grad_norm/*``) and the
images of ``MIMVisualizationHook``; it writes event files under
``<work_dir>/<timestamp>/vis_data/`` (``tensorboard --logdir work_dirs``).
"""
import importlib.util
from typing import Optional

from mmengine.config import Config, ConfigDict

__all__ = ['TENSORBOARD_BACKEND', 'USE_TENSORBOARD_KEY', 'enable_tensorboard',
           'TensorboardMissingError']

TENSORBOARD_BACKEND = 'TensorboardVisBackend'
USE_TENSORBOARD_KEY = 'use_tensorboard'


class TensorboardMissingError(ImportError):
    """TensorBoard logging was asked for and the ``tensorboard`` package is not installed."""


def _has_tensorboard(backends) -> bool:
    return any(isinstance(b, dict) and str(b.get('type', '')).split('.')[-1] == TENSORBOARD_BACKEND
               for b in backends or ())


def enable_tensorboard(cfg: Config, enable: Optional[bool] = True) -> bool:
    """Add ``dict(type='TensorboardVisBackend')`` to ``cfg.visualizer.vis_backends`` and to
    ``cfg.vis_backends`` (each once) when ``enable`` is true or the config sets
    ``use_tensorboard = True``.

    ``tools/train.py --tensorboard`` calls ``enable_tensorboard(cfg, args.tensorboard)``, so
    the flag and the config key do the same thing.

    Returns:
        whether TensorBoard is on.
    Raises:
        TensorboardMissingError: it is asked for and ``tensorboard`` is not installed.
    """
    if not (enable or cfg.get(USE_TENSORBOARD_KEY, False)):
        return False
    if importlib.util.find_spec('tensorboard') is None:
        raise TensorboardMissingError(
            'TensorBoard logging (--tensorboard or use_tensorboard = True) needs the tensorboard '
            'package, which is not installed: pip install tensorboard')
    visualizer = cfg.get('visualizer')
    if not isinstance(visualizer, dict):
        visualizer = ConfigDict(type='Visualizer', name='visualizer',
                                vis_backends=[dict(type='LocalVisBackend')])
        cfg.visualizer = visualizer
    backends = list(visualizer.get('vis_backends') or [])
    if not _has_tensorboard(backends):
        backends.append(dict(type=TENSORBOARD_BACKEND))
    cfg.visualizer.vis_backends = backends
    top = list(cfg.get('vis_backends') or [])
    if not _has_tensorboard(top):
        top.append(dict(type=TENSORBOARD_BACKEND))
    cfg.vis_backends = top
    return True
