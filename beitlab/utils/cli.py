"""One-line errors for the command-line tools.

Every tool under ``tools/`` ends with ``run_cli(main)``. An exception that reaches it is
printed as one line, ``<tool>: error: <message>``, and the process exits with status 1;
the traceback is shown only with ``--debug`` on the command line or ``BEITLAB_DEBUG=1``
in the environment. ``--debug`` is taken off ``sys.argv`` before ``main`` parses it, so
every tool accepts it without declaring it.

User errors (a missing file or data root, an unknown registry name, a refused
checkpoint, a shape mismatch, a bad option value) raise the built-in exception types
below with a message that names the value and what was expected; any other exception
is reported the same way, marked as unexpected.

An error that knows several ways forward (e.g. where to get missing weights) is a
:class:`HintedError`: its ``message`` goes on the error line and each of its ``hints``
on a line of its own below it; ``str()`` of it holds both, for tracebacks and tests.
"""
import os
import os.path as osp
import re
import sys
from typing import Callable, List, NoReturn, Sequence

__all__ = ['DEBUG_ENV', 'HintedError', 'debug_requested', 'hint_lines',
           'one_line_message', 'run_cli']

DEBUG_ENV = 'BEITLAB_DEBUG'

# Errors whose message is meant for the user: bad paths, names, values, checkpoints.
USER_ERROR_TYPES = (OSError, KeyError, ValueError, TypeError, RuntimeError, ImportError,
                    AssertionError)
# "[Errno 2] No such file or directory: 'x'" reads better without the errno.
_ERRNO_PREFIX = re.compile(r'^\[Errno \d+\] ')


class HintedError(Exception):
    """An error with one line saying what is wrong and lines saying how to fix it.

    Mix it in before a built-in type, e.g. ``class X(HintedError, FileNotFoundError)``.

    Args:
        message: what is wrong, naming the value and what was expected.
        hints: ways forward, each a short sentence (ideally with an exact command).
    """

    def __init__(self, message: str, hints: Sequence[str] = ()) -> None:
        self.message = str(message)
        self.hints = tuple(str(h) for h in hints)
        super().__init__(' '.join([self.message, *self.hints]))


def debug_requested() -> bool:
    """``--debug`` on the command line or ``BEITLAB_DEBUG`` set to a non-empty, non-zero value."""
    return '--debug' in sys.argv or os.environ.get(DEBUG_ENV, '') not in ('', '0')


def one_line_message(err: BaseException) -> str:
    """The error's message on one line (a :class:`HintedError`: its message without the
    hints), without the quotes ``KeyError`` adds or an ``[Errno N]`` prefix."""
    if isinstance(err, HintedError) and err.hints:
        text = err.message
    elif isinstance(err, KeyError) and len(err.args) == 1:
        text = err.args[0]
    else:
        text = str(err)
    text = _ERRNO_PREFIX.sub('', str(text))
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    text = ' '.join(lines) or type(err).__name__
    if isinstance(err, FileNotFoundError) and err.filename and str(err.filename) not in text:
        text = f'{text}: {err.filename!r}'
    return text


def hint_lines(err: BaseException) -> List[str]:
    """The ``hints`` of a :class:`HintedError`, one line each (none for other errors)."""
    if not isinstance(err, HintedError):
        return []
    return [' '.join(h.split()) for h in err.hints if h.strip()]


def run_cli(main: Callable[[], object]) -> NoReturn:
    """Run a tool's ``main`` and exit: 0 on success, 1 with one error line (and the hint
    lines of a :class:`HintedError`) on an error, 130 on Ctrl-C."""
    tool = osp.basename(sys.argv[0]) or 'beitlab'
    debug = debug_requested()
    if '--debug' in sys.argv:
        sys.argv = [a for a in sys.argv if a != '--debug']
    if debug:
        sys.exit(_exit_code(main()))
    try:
        code = _exit_code(main())
    except KeyboardInterrupt:
        print(f'{tool}: interrupted', file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - every error becomes one line
        message = one_line_message(err)
        if not isinstance(err, USER_ERROR_TYPES):
            message = f'unexpected {type(err).__name__}: {message}'
        hints = ''.join(f'  {line}\n' for line in hint_lines(err))
        print(f'{tool}: error: {message}\n{hints}'
              f'(rerun with --debug or {DEBUG_ENV}=1 for the traceback)', file=sys.stderr)
        sys.exit(1)
    sys.exit(code)


def _exit_code(result: object) -> int:
    """A ``main`` that returns an int sets the exit status; anything else means success."""
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
