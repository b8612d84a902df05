"""Checkpoints load with weights_only=True; a malicious pickle is refused unexecuted."""
import os
import pickle

import pytest
import torch

from beitlab.checkpoint import UnsafeCheckpointError, safe_torch_load
from beitlab.checkpoint.io import _history_buffer_method
from beitlab.utils import register_all_modules

from ..tools_helpers import run_tool


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_malicious_checkpoint_is_refused_and_not_run(tmp_path) -> None:
    register_all_modules()
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'meta': _Exploit(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        safe_torch_load(path)
    assert not marker.exists()


def test_malicious_checkpoint_refused_by_train_load_from(tmp_path) -> None:
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _Exploit(str(marker))}, path)
    proc = run_tool('train.py', 'tests/data/configs/toy_regression.py', '--work-dir',
                    tmp_path / 'w', '--cfg-options', f'load_from={path}', check=False)
    assert proc.returncode != 0
    assert 'UnsafeCheckpointError' in proc.stderr and 'evil.pth' in proc.stderr
    assert not marker.exists()


def test_getattr_is_restricted_to_history_buffer_statistics() -> None:
    from mmengine.logging.history_buffer import HistoryBuffer
    assert _history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        _history_buffer_method(os, 'system')
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        _history_buffer_method(HistoryBuffer, '__init__')


def test_missing_checkpoint_names_the_path(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        safe_torch_load(tmp_path / 'nope.pth')
