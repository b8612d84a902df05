"""Slow every ``os.fsync`` by ``BEITLAB_TEST_FSYNC_DELAY`` seconds (unset or 0: no effect).

Loaded by ``tests/data/configs/toy_regression_preemptible.py`` through ``custom_imports`` (and
imported before a converter in ``tests/tools/test_kill_during_checkpoint.py``) so that a kill
sent by the test lands inside an atomic write: the data of the temporary file is written, the
rename over the destination has not happened yet.
"""
import os
import time

DELAY_ENV = 'BEITLAB_TEST_FSYNC_DELAY'
_delay = float(os.environ.get(DELAY_ENV, '0') or 0)

if _delay > 0 and not getattr(os.fsync, '_beitlab_slow', False):
    _fsync = os.fsync

    def _slow_fsync(fd: int) -> None:
        time.sleep(_delay)
        _fsync(fd)

    _slow_fsync._beitlab_slow = True
    os.fsync = _slow_fsync
