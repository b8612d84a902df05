"""beitlab.utils.find_resume_checkpoint: the newest intact checkpoint of a work dir, with a
warning for every broken pointer or file it passes over."""
import logging
import os

import pytest
import torch

from beitlab.utils import find_resume_checkpoint
from beitlab.utils.resume import checkpoint_problem


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture()
def log():
    logger = logging.getLogger('test_resume')
    logger.propagate = False
    handler = _Records()
    logger.addHandler(handler)
    yield logger, handler.messages
    logger.removeHandler(handler)


def save(path, it: int) -> str:
    torch.save({'state_dict': {'w': torch.full((64, ), float(it))}, 'meta': {'iter': it}}, path)
    return str(path)


def truncate(path) -> None:
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


def test_last_checkpoint_is_taken_when_intact(tmp_path, log) -> None:
    logger, messages = log
    save(tmp_path / 'iter_2.pth', 2)
    older = save(tmp_path / 'iter_1.pth', 1)
    (tmp_path / 'last_checkpoint').write_text(older)
    assert find_resume_checkpoint(str(tmp_path), logger) == older  # mmengine's pointer wins
    assert messages == []


def test_nothing_to_resume(tmp_path, log) -> None:
    logger, messages = log
    assert find_resume_checkpoint(str(tmp_path), logger) is None
    assert find_resume_checkpoint(str(tmp_path / 'never_created'), logger) is None
    assert messages == []
    (tmp_path / 'last_checkpoint').write_text('')
    assert find_resume_checkpoint(str(tmp_path), logger) is None
    assert 'last_checkpoint' in messages[0] and 'is empty' in messages[0]


def test_empty_last_checkpoint_falls_back_to_the_newest_by_number(tmp_path, log) -> None:
    logger, messages = log
    for it in (2, 10, 9):  # 10 > 9 > 2 by number, whatever the order of writing
        save(tmp_path / f'iter_{it}.pth', it)
    (tmp_path / 'last_checkpoint').write_text('')
    (tmp_path / 'best_accuracy_iter_11.pth').write_bytes(b'')  # not a resume candidate
    (tmp_path / '.iter_11.pth.abc.tmp').write_bytes(b'x')
    assert find_resume_checkpoint(str(tmp_path), logger) == str(tmp_path / 'iter_10.pth')
    assert any(str(tmp_path / 'last_checkpoint') in m and 'is empty' in m for m in messages)


def test_truncated_newest_is_skipped_with_a_warning(tmp_path, log) -> None:
    logger, messages = log
    save(tmp_path / 'iter_4.pth', 4)
    newest = save(tmp_path / 'iter_5.pth', 5)
    truncate(newest)
    (tmp_path / 'last_checkpoint').write_text(newest)
    assert checkpoint_problem(newest) is not None
    got = find_resume_checkpoint(str(tmp_path), logger)
    assert got == str(tmp_path / 'iter_4.pth')
    assert torch.load(got, weights_only=True)['meta']['iter'] == 4
    text = '\n'.join(messages)
    assert f'names {newest!r}, which cannot be resumed from' in text
    assert f'skipping {newest!r}' in text and 'not a complete torch checkpoint' in text
    # the same with no pointer at all, and with a pointer to a deleted file
    os.remove(tmp_path / 'last_checkpoint')
    assert find_resume_checkpoint(str(tmp_path), logger) == str(tmp_path / 'iter_4.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_6.pth'))
    assert find_resume_checkpoint(str(tmp_path), logger) == str(tmp_path / 'iter_4.pth')
    assert 'does not exist' in messages[-3]


def test_all_truncated_means_none(tmp_path, log) -> None:
    logger, messages = log
    for it in (1, 2):
        truncate(save(tmp_path / f'epoch_{it}.pth', it))
    (tmp_path / 'iter_3.pth').write_bytes(b'')
    assert find_resume_checkpoint(str(tmp_path), logger) is None
    assert sum('skipping' in m for m in messages) == 3


def test_pointer_into_an_out_dir_and_a_moved_work_dir(tmp_path, log) -> None:
    logger, _ = log
    work, out = tmp_path / 'work', tmp_path / 'ckpts' / 'work'
    work.mkdir()
    out.mkdir(parents=True)
    save(out / 'iter_3.pth', 3)
    truncate(save(out / 'iter_4.pth', 4))
    (work / 'last_checkpoint').write_text(str(out / 'iter_4.pth'))
    assert find_resume_checkpoint(str(work), logger) == str(out / 'iter_3.pth')
    # a relative pointer written before the work dir was moved: found by its file name
    save(work / 'iter_7.pth', 7)
    (work / 'last_checkpoint').write_text('old_place/iter_7.pth')
    assert find_resume_checkpoint(str(work), logger) == str(work / 'iter_7.pth')
