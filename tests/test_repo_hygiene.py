"""Tracked text speaks to users and contributors: no paths of a particular machine, no
words about how the development was organised.

Every file that ``git ls-files`` lists is read (binary files and images are skipped) and
every line is matched against :data:`PATTERNS`. A failure names each hit as
``file:line: [pattern] matched text``. The patterns are written so that this file does not
match them itself (a bracketed character such as ``[o]`` breaks the literal word), so it is
checked like any other file.
"""
import re
import subprocess
from pathlib import Path
from typing import List, NamedTuple, Tuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


class Pattern(NamedTuple):
    name: str
    regex: str
    why: str


# Case-insensitive. A path pattern needs a non-path character (or the line start) before
# the slash, so relative paths such as ``work_dirs/`` or ``data/`` never match.
_PATH = r'(?<![\w.~-])'
PATTERNS: Tuple[Pattern, ...] = (
    # --- absolute paths of a development machine -------------------------------------
    Pattern('machine path', _PATH + r'/w[o]rk/',
            'the working root of a development machine; use a path relative to the repository'),
    Pattern('machine path', _PATH + r'/r[o]ot/', "the superuser's home directory"),
    Pattern('machine path', _PATH + r'/h[o]me/[a-z_][\w.-]*', "a user's home directory"),
    Pattern('machine path', _PATH + r'/U[s]ers/[A-Za-z_][\w.-]*', "a user's home directory (macOS)"),
    Pattern('machine path', _PATH + r'/t[m]p/',
            'a scratch folder someone ran something in; code uses tempfile / pytest tmp_path'),
    # --- files outside the repository --------------------------------------------------
    Pattern('outside file', r'\.\./s[h]ared\b', 'a folder next to the clone, not shipped'),
    Pattern('outside file', r'\bS[T]ACK\.md\b', 'an unshipped notes file; docs/install.md has the stack'),
    Pattern('outside file', r'\bS[T]YLE\.md\b', 'an unshipped notes file; CONTRIBUTING.md has the style'),
    Pattern('outside file', r'\bbeit-m[e]thod\.md\b', 'an unshipped method description'),
    # --- citations of an unshipped specification -----------------------------------------
    Pattern('spec citation', r'\bs[p]ec\s+(?:sec\.?\s*)?(?-i:[IVX]+)\b',
            'cite the BEiT paper section or the official unilm file instead'),
    Pattern('spec citation', r"\b(?:the|method)\s+s[p]ec(?:'s)?\b",
            'cite the BEiT paper section or the official unilm file instead'),
    Pattern('spec citation', r'\(s[p]ec\s', 'cite the BEiT paper section or the official unilm file'),
    # --- team roles -------------------------------------------------------------------
    Pattern('team role', r'\bthe\s+l[e]ad\b', 'a role in the team that wrote the code'),
    Pattern('team role', r'\bl[e]ad\s+owns\b', 'file ownership inside the team'),
    Pattern('team role', r'\be[n]gineers?\b', 'a team member named by job title'),
    # --- tracker items and scheduling -----------------------------------------------------
    Pattern('tracker', r'\bi[s]sues?\s*#?\d+', 'a numbered ticket'),
    Pattern('tracker', r"\bthe\s+i[s]sue(?:'s)?\s+(?:says|said|asks|asked|expected|rule)\b",
            'an unshipped ticket quoted as the authority'),
    Pattern('tracker', r'\bt[a]sks?\s*#?\d+\b', 'a numbered unit of planned work'),
    Pattern('tracker', r'\bw[o]rk\s+items?\b', 'a unit of planned work'),
    Pattern('tracker', r'\bd[o]ne-criterion\b', 'the acceptance criterion of a ticket'),
    # --- the team's machines and working periods as narrative --------------------------------
    # The word as prose, not as code: not after a dot (``requests.Session``), not before
    # ``(``, ``.`` or ``=``; a quoted pytest fixture scope is in ALLOWED.
    Pattern('narrative', r'(?<!\.)\bs[e]ssions?\b(?!\s*[(.=])', "the team's working periods"),
    Pattern('narrative', r'\bl[e]nt\b', 'which machine someone was given'),
    Pattern('narrative', r'\bc[a]n_start_another\b', 'output of a development tool'),
    Pattern('narrative', r'\bthe\s+d[e]vice\s+tool\b', 'a development tool, not part of beitlab'),
    Pattern('narrative', r'\bthis\s+w[o]rkspace\b', 'the machine the code was written on'),
)

# (path suffix, regex) pairs: a hit inside a match of the regex, in a file whose path ends
# with the suffix, is allowed. Keep this list short and say why each entry is needed.
ALLOWED: Tuple[Tuple[str, str], ...] = (
    ('.py', r"""scope\s*=\s*['"]s[e]ssion['"]"""),  # a pytest fixture scope
)

BINARY_SUFFIXES = ('.png', '.jpg', '.jpeg', '.gif', '.bmp', '.ico', '.pdf', '.gz', '.zip', '.tar',
                   '.whl', '.pth', '.pt', '.pkl', '.npy', '.npz', '.so')

_COMPILED = [(p, re.compile(p.regex, re.IGNORECASE)) for p in PATTERNS]
_ALLOWED = [(suffix, re.compile(rx, re.IGNORECASE)) for suffix, rx in ALLOWED]


def _allowed(rel: str, line: str, start: int, end: int) -> bool:
    return any(rel.endswith(suffix) and a.start() <= start and end <= a.end()
               for suffix, rx in _ALLOWED for a in rx.finditer(line))


def tracked_text_files() -> List[Path]:
    """Every file ``git ls-files`` lists that exists and is text (no NUL byte)."""
    try:
        out = subprocess.run(['git', 'ls-files', '-z'], cwd=REPO_ROOT, check=True,
                             capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f'not a git checkout ({err})')
    files = []
    for name in out.decode().split('\0'):
        path = REPO_ROOT / name
        if not name or name.lower().endswith(BINARY_SUFFIXES) or not path.is_file():
            continue
        if b'\0' in path.read_bytes()[:8192]:
            continue
        files.append(path)
    return files


def find_hits(rel: str, text: str) -> List[str]:
    """``rel:line: [pattern] 'matched text': line`` for every pattern hit in ``text``."""
    hits, seen = [], set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        for pattern, rx in _COMPILED:
            for m in rx.finditer(line):
                key = (lineno, pattern.name, m.start())
                if _allowed(rel, line, m.start(), m.end()) or key in seen:
                    continue
                seen.add(key)
                hits.append(f'{rel}:{lineno}: [{pattern.name}] {m.group(0)!r} ({pattern.why}): '
                            f'{line.strip()[:160]}')
    return hits


def test_patterns_catch_what_they_are_for() -> None:
    """Each pattern fires on an example of what it is for and spares the legitimate uses."""
    bad = ['ran it in /' + 'work/main/.venv', 'see ../' + 'shared/', 'as in STA' + 'CK.md',
           '(spe' + 'c III.B.2)', 'method spe' + 'c Sec. II', 'ask the ' + 'lead',
           'the tokenizer ' + "engi" + "neer's quantizer", 'as in iss' + 'ue 7',
           'tas' + 'k 5 says', 'late in the sess' + 'ion', "the sess" + "ion's time limit",
           'no GPU was le' + 'nt', 'copied to /t' + 'mp/x.pth', '/ho' + 'me/alice/data']
    for text in bad:
        assert find_hits('x.md', text), f'no pattern matched {text!r}'
    good = ['/usr/share/datasets/fashion-mnist', 'work_dirs/beit/iter_100.pth',
            "@pytest.fixture(scope='session')", 'spec = importlib.util.spec_from_file_location(n, p)',
            'spec.loader.exec_module(module)', 'a specific inspection', 'excellent results',
            'feature engineering', 'requests.Session()', 'the data-hungry issue of ViTs',
            'multi-task pre-training', 'tmp_path / "out"', 'tempfile.mkdtemp()']
    for text in good:
        assert not find_hits('x.py', text), f'{text!r} matched: {find_hits("x.py", text)}'


def test_tracked_text_has_no_machine_paths_or_process_words() -> None:
    hits = []
    for path in tracked_text_files():
        rel = path.relative_to(REPO_ROOT).as_posix()
        hits += find_hits(rel, path.read_text(encoding='utf-8', errors='replace'))
    assert not hits, (f'{len(hits)} line(s) speak about the development instead of to users '
                      f'(patterns in {Path(__file__).name}):\n' + '\n'.join(hits))
