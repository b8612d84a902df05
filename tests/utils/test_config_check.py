"""An unknown ``type`` fails before training, naming registry, name and close names."""
import pytest
from mmengine.config import Config

from beitlab.utils import UnknownTypeError, check_config_types, register_all_modules

from ..tools_helpers import run_tool

TOY = 'tests/data/configs/toy_regression.py'


def test_unknown_model_type_names_registry_and_close_matches() -> None:
    register_all_modules()
    cfg = Config.fromfile(TOY)
    cfg.model = dict(type='ToyRegresor')
    with pytest.raises(UnknownTypeError) as info:
        check_config_types(cfg)
    message = str(info.value)
    assert "'ToyRegresor'" in message and 'model' in message and 'ToyRegressor' in message


def test_unknown_hook_in_train_tool_fails_before_training(tmp_path) -> None:
    proc = run_tool('train.py', TOY, '--work-dir', tmp_path,
                    '--cfg-options', 'default_hooks.logger.type=LogerHook', check=False)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr and 'error: config key default_hooks.logger.type' in proc.stderr
    assert "'LogerHook'" in proc.stderr and 'hook' in proc.stderr and 'LoggerHook' in proc.stderr
    assert 'Iter(train)' not in proc.stdout + proc.stderr


def test_valid_config_passes() -> None:
    register_all_modules()
    check_config_types(Config.fromfile(TOY))


def test_hook_arguments_are_checked_in_their_own_registries() -> None:
    register_all_modules()
    cfg = Config.fromfile(TOY)
    cfg.custom_hooks = [dict(type='KNNMonitorHook', interval=1,
                             train_dataloader=dict(dataset=dict(type='ImageNetStyleDataset',
                                                                pipeline=[dict(type='LoadImageChecked')])))]
    check_config_types(cfg)  # a dataset and a transform inside a hook's arguments are fine
    cfg.custom_hooks[0].train_dataloader.dataset.type = 'ImageNetStyleDatset'
    with pytest.raises(UnknownTypeError, match=r"custom_hooks\[0\]\.train_dataloader\.dataset.*"
                                               r"'ImageNetStyleDatset'.*ImageNetStyleDataset"):
        check_config_types(cfg)
