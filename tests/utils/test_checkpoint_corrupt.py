"""A truncated, empty or non-torch checkpoint file is named with its size instead of torch's
``PytorchStreamReader failed reading zip archive`` (which names no file)."""
import re

import pytest
import torch

from beitlab.checkpoint import safe_torch_load
from beitlab.checkpoint.io import CorruptCheckpointError, UnsafeCheckpointError

from ..tools_helpers import run_tool


def saved(tmp_path, zip_format: bool = True) -> bytes:
    path = tmp_path / 'whole.pth'
    torch.save({'state_dict': {'w': torch.arange(4000.)}, 'meta': {'iter': 2}}, path,
               _use_new_zipfile_serialization=zip_format)
    return path.read_bytes()


@pytest.mark.parametrize('name, cut', [
    ('half.pth', lambda b: b[:len(b) // 2]),        # cut inside a tensor record
    ('head.pth', lambda b: b[:100]),                # no zip index at all
    ('tail.pth', lambda b: b[:-30]),                # zip index cut short
    ('empty.pth', lambda b: b''),
    ('text.pth', lambda b: b'these are not the weights you are looking for\n'),
])
def test_cut_or_foreign_file_names_file_and_size(tmp_path, name, cut) -> None:
    data = cut(saved(tmp_path))
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(CorruptCheckpointError) as info:
        safe_torch_load(path)
    text = str(info.value)
    assert f"checkpoint file '{path}' ({len(data)} bytes) is truncated or not a torch " \
        'checkpoint' in text, text
    assert isinstance(info.value, RuntimeError) and not isinstance(info.value,
                                                                   UnsafeCheckpointError)


def test_truncated_legacy_format_file(tmp_path) -> None:
    data = saved(tmp_path, zip_format=False)
    path = tmp_path / 'legacy.pth'
    path.write_bytes(data[:-20])
    with pytest.raises(CorruptCheckpointError, match=re.escape(f'({len(data) - 20} bytes)')):
        safe_torch_load(path)
    path.write_bytes(data)
    assert safe_torch_load(path)['meta'] == {'iter': 2}  # whole files still load


def test_tools_name_a_truncated_load_from(tmp_path) -> None:
    data = saved(tmp_path)
    path = tmp_path / 'iter_2.pth'
    path.write_bytes(data[:len(data) // 3])
    proc = run_tool('train.py', 'tests/data/configs/toy_regression.py', '--work-dir',
                    tmp_path / 'w', '--cfg-options', f'load_from={path}', check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith('train.py: error:')]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-2000:]
    assert f"'{path}' ({len(data) // 3} bytes) is truncated or not a torch checkpoint" \
        in lines[0], lines[0]
