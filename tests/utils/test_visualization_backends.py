"""enable_tensorboard: the flag and the config key add TensorBoard once; a missing package is one line."""
import glob
import importlib.util

import pytest
from mmengine.config import Config

from beitlab.utils.visualization_backends import TensorboardMissingError, enable_tensorboard
from tests.tools_helpers import REPO_ROOT

TOY = str(REPO_ROOT / 'tests' / 'data' / 'configs' / 'toy_regression.py')


def _backends(cfg: Config):
    return [b['type'] for b in cfg.visualizer.vis_backends], [b['type'] for b in cfg.vis_backends]


def test_flag_and_config_key(monkeypatch) -> None:
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: object())
    cfg = Config.fromfile(TOY)
    assert enable_tensorboard(cfg, False) is False
    assert _backends(cfg) == (['LocalVisBackend'], ['LocalVisBackend'])
    assert enable_tensorboard(cfg) is True
    assert enable_tensorboard(cfg) is True                     # added once
    assert _backends(cfg) == (['LocalVisBackend', 'TensorboardVisBackend'],) * 2
    keyed = Config.fromfile(TOY)
    keyed.use_tensorboard = True
    assert enable_tensorboard(keyed, False) is True
    assert _backends(keyed) == (['LocalVisBackend', 'TensorboardVisBackend'],) * 2


def test_missing_package_is_a_one_line_error(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'tensorboard' else real(name, *a))
    cfg = Config.fromfile(TOY)
    with pytest.raises(TensorboardMissingError, match='pip install tensorboard') as err:
        enable_tensorboard(cfg)
    assert '\n' not in str(err.value) and isinstance(err.value, ImportError)
    assert enable_tensorboard(cfg, False) is False            # not asked for: no error


def test_a_run_writes_tensorboard_events(tmp_path) -> None:
    pytest.importorskip('tensorboard', reason='optional: pip install tensorboard')
    from beitlab.engine.runner import BeitlabRunner
    from beitlab.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(TOY)
    cfg.work_dir = str(tmp_path)
    cfg.visualizer.name = f'visualizer-{tmp_path}'
    enable_tensorboard(cfg)
    BeitlabRunner.from_cfg(cfg).train()
    assert glob.glob(str(tmp_path / '*' / 'vis_data' / 'events.out.tfevents.*'))
