"""beitlab.utils.atomic_io: atomic replacement, permissions, read-back checks and the output
refusals every tool runs."""
import errno
import os
import stat

import pytest
import torch

from beitlab.utils import atomic_io
from beitlab.utils.atomic_io import (
    atomic_open,
    atomic_torch_save,
    atomic_write_bytes,
    check_output_path,
    find_temp_files,
    verify_torch_file,
)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_replaces_with_normal_permissions(tmp_path) -> None:
    dst = tmp_path / 'sub' / 'out.bin'
    old = os.umask(0o027)
    try:
        atomic_write_bytes(dst, b'first')
        assert _mode(dst) == 0o640  # 0o666 minus the umask, not mkstemp's 0o600
    finally:
        os.umask(old)
    atomic_write_bytes(dst, b'second')
    assert dst.read_bytes() == b'second' and _mode(dst) == 0o666 & ~old
    assert os.listdir(dst.parent) == ['out.bin']


def test_error_inside_the_write_keeps_the_old_file_and_no_temp(tmp_path) -> None:
    dst = tmp_path / 'out.bin'
    dst.write_bytes(b'old')
    with pytest.raises(OSError, match='injected'):
        with atomic_open(dst) as f:
            f.write(b'half of the new')
            raise OSError(errno.ENOSPC, 'injected: no space left')
    assert dst.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['out.bin'] and find_temp_files(tmp_path) == []


def test_failed_fsync_or_verify_keeps_the_old_file(tmp_path, monkeypatch) -> None:
    dst = tmp_path / 'model.pth'
    torch.save({'w': torch.zeros(3)}, dst)
    before = dst.read_bytes()

    def failing_fsync(fd):
        raise OSError(errno.EIO, 'injected I/O error')

    monkeypatch.setattr(atomic_io.os, 'fsync', failing_fsync)
    with pytest.raises(OSError, match='injected'):
        atomic_torch_save({'w': torch.ones(3)}, dst)
    monkeypatch.undo()
    assert dst.read_bytes() == before and os.listdir(tmp_path) == ['model.pth']

    def refuse(path):
        raise ValueError(f'{path} refused')

    with pytest.raises(ValueError, match='refused'):
        atomic_write_bytes(dst, b'not a checkpoint', verify=refuse)
    assert dst.read_bytes() == before and os.listdir(tmp_path) == ['model.pth']


def test_atomic_torch_save_round_trip_and_verify_levels(tmp_path) -> None:
    dst = tmp_path / 'ckpt.pth'
    obj = {'state_dict': {'w': torch.arange(4000.).reshape(40, 100)}, 'meta': {'iter': 3}}
    atomic_torch_save(obj, dst)
    loaded = torch.load(dst, weights_only=True)
    assert torch.equal(loaded['state_dict']['w'], obj['state_dict']['w'])
    for level in ('zip', 'crc', 'load'):
        verify_torch_file(dst, level)
    data = dst.read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) - 30])
    with pytest.raises(ValueError, match="cut.pth' is not a complete torch checkpoint"):
        verify_torch_file(tmp_path / 'cut.pth')
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF  # inside the tensor's bytes
    (tmp_path / 'flip.pth').write_bytes(bytes(flipped))
    verify_torch_file(tmp_path / 'flip.pth', 'zip')  # the cheap check reads no tensor bytes
    with pytest.raises(ValueError, match="flip.pth' .*'archive/data/0' fails its CRC check"):
        verify_torch_file(tmp_path / 'flip.pth', 'crc')
    with pytest.raises(ValueError, match='expected one of'):
        verify_torch_file(dst, 'md5')


def test_check_output_path_refuses_existing_output_without_force(tmp_path) -> None:
    src, dst = tmp_path / 'src.pth', tmp_path / 'dst.pth'
    src.write_bytes(b'src')
    assert check_output_path(str(dst), [str(src)]) == str(dst)  # new path: fine
    dst.write_bytes(b'dst')
    with pytest.raises(FileExistsError) as info:
        check_output_path(str(dst), [str(src)])
    assert str(dst) in str(info.value) and '--force' in str(info.value)
    assert check_output_path(str(dst), [str(src)], force=True) == str(dst)
    with pytest.raises(IsADirectoryError, match='folder'):
        check_output_path(str(tmp_path), [str(src)], force=True)


def test_check_output_path_refuses_the_input_even_with_force(tmp_path) -> None:
    src = tmp_path / 'src.pth'
    src.write_bytes(b'src')
    (tmp_path / 'sub').mkdir()
    link = tmp_path / 'link.pth'
    link.symlink_to(src)
    hard = tmp_path / 'hard.pth'
    os.link(src, hard)
    for dst, how in ((src, 'same path'), (tmp_path / 'sub' / '..' / 'src.pth', 'same path'),
                     (link, 'resolve'), (hard, 'hard link')):
        for force in (False, True):
            with pytest.raises(ValueError) as info:
                check_output_path(str(dst), [None, str(src)], force=force)
            msg = str(info.value)
            assert str(dst) in msg and str(src) in msg and how in msg, msg
    assert src.read_bytes() == b'src'


def test_check_output_path_folders(tmp_path) -> None:
    out = tmp_path / 'out'
    check_output_path(str(out), [str(tmp_path / 'src')], folder=True)  # does not exist yet
    out.mkdir()
    check_output_path(str(out), folder=True)  # empty
    (out / 'a.png').write_bytes(b'')
    with pytest.raises(FileExistsError, match="'.*out' exists and is not empty; pass --force"):
        check_output_path(str(out), folder=True)
    check_output_path(str(out), folder=True, force=True)
    with pytest.raises(ValueError, match='is the input'):
        check_output_path(str(out), [str(out)], folder=True, force=True)
    with pytest.raises(NotADirectoryError):
        check_output_path(str(out / 'a.png'), folder=True, force=True)


def test_find_temp_files_names_only_leftovers(tmp_path) -> None:
    (tmp_path / '.iter_3.pth.abc_12.tmp').write_bytes(b'')
    (tmp_path / '.last_checkpoint.x9.tmp').write_bytes(b'')
    (tmp_path / 'iter_3.pth').write_bytes(b'')
    (tmp_path / 'notes.tmp').write_bytes(b'')
    assert [os.path.basename(p) for p in find_temp_files(tmp_path)] == [
        '.iter_3.pth.abc_12.tmp', '.last_checkpoint.x9.tmp']
    assert [os.path.basename(p) for p in find_temp_files(tmp_path, lambda n: n == 'iter_3.pth')] \
        == ['.iter_3.pth.abc_12.tmp']
    assert find_temp_files(tmp_path / 'missing') == []


def test_atomic_savefig_writes_the_format_of_the_extension_and_keeps_the_old_file_on_error(
        tmp_path):
    matplotlib = pytest.importorskip('matplotlib')
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png, svg = tmp_path / 'curve.png', tmp_path / 'curve.svg'
    atomic_io.atomic_savefig(fig, png, dpi=50)
    atomic_io.atomic_savefig(fig, svg)
    assert png.read_bytes().startswith(b'\x89PNG')
    assert b'<svg' in svg.read_bytes()[:1000]
    before = png.read_bytes()
    with pytest.raises(TypeError):
        atomic_io.atomic_savefig(fig, png, no_such_option=1)
    plt.close(fig)
    assert png.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['curve.png', 'curve.svg']
