"""Every command printed in the README and in docs/ runs as written on a fresh clone.

The fenced ``bash`` blocks are read as a user would copy them (comments dropped, ``\\``
continuations joined). A ``python tools/<tool>.py ...`` command is run up to the end of
its argument parsing (its imports load and its arguments parse); a ``bash tools/*.sh``
command must name a script that exists and is valid bash; every repository path a
command reads (``configs/...``, ``tools/...``, ``projects/...``, ``tests/...``) exists.
Commands with placeholders (``CONFIG``, ``CKPT``, ``<folder>``, ``[...]``) are checked
for their tool's existence only.
"""
import re
import shlex
import subprocess
import sys
from typing import Iterator, List, Tuple

import pytest

from tests.tools_helpers import REPO_ROOT

DOCS = [REPO_ROOT / 'README.md', REPO_ROOT / 'CONTRIBUTING.md',
        *sorted((REPO_ROOT / 'docs').glob('*.md'))]
FENCE_LINE = re.compile(r'^[ \t]*```[ \t]*(\w*)')
SHELL_LANGUAGES = ('', 'bash', 'sh', 'shell', 'console')
# A line of a block is a command when it starts (after VAR=value settings) like one;
# other lines of a plain block are printed output.
COMMAND_START = re.compile(r'^(?:[A-Z_]+=\S*\s+)*(?:time\s+)?(?:python3?|\S*/bin/python|bash)\s')
# Upper-case words and <...> / [...] stand for values the user fills in.
PLACEHOLDER = re.compile(r'\b[A-Z][A-Z_]{2,}\b(?!=)|<[^>]+>|\[[^\]]*\]|\.\.\.')
REPO_PATH = re.compile(r'^(configs|tools|projects|tests)/')
# Runs the tool's own __main__ and stops it right after argparse has parsed the command line.
PARSE_ONLY = '''
import argparse, runpy, sys
def stop(result):
    print('beitlab-readme-check: arguments parsed')
    sys.exit(0)
parse_args, parse_known = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
argparse.ArgumentParser.parse_args = lambda self, *a, **k: stop(parse_args(self, *a, **k))
argparse.ArgumentParser.parse_known_args = lambda self, *a, **k: stop(parse_known(self, *a, **k))
sys.argv = sys.argv[1:]
sys.path.insert(0, '.')
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def shell_blocks(text: str) -> Iterator[Tuple[int, str]]:
    """``(first line number, body)`` of every fenced block whose language is a shell (or none);
    fences are paired in order, so a ``python`` block never swallows the next one."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE_LINE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not re.match(r'^[ \t]*```[ \t]*$', lines[end]):
            end += 1
        if opening.group(1) in SHELL_LANGUAGES:
            yield i + 2, '\n'.join(lines[i + 1:end])
        i = end + 1


def fenced_commands() -> Iterator[Tuple[str, int, str]]:
    """``(document, line, command)`` for every command in the fenced shell blocks."""
    for doc in DOCS:
        if not doc.is_file():
            continue
        for first_line, body in shell_blocks(doc.read_text()):
            offset = 0
            for line in body.replace('\\\n', ' ').splitlines():
                offset += 1
                command = line.split(' # ')[0].split('\t#')[0].strip()
                if COMMAND_START.match(command):
                    yield doc.name, first_line + offset - 1, command


def tool_argv(command: str) -> Tuple[List[str], List[str]]:
    """``(env assignments, argv)`` of a command, without a leading ``time``."""
    words = shlex.split(command)
    env = []
    while words and re.match(r'^[A-Z_]+=', words[0]):
        env.append(words.pop(0))
    if words and words[0] == 'time':
        words.pop(0)
    return env, words


COMMANDS = list(fenced_commands())


def test_the_documents_print_commands() -> None:
    readme = [c for doc, _, c in COMMANDS if doc == 'README.md']
    assert 'bash tools/demo.sh' in readme and 'bash tools/run_tests.sh' in readme


@pytest.mark.parametrize('doc,line,command', COMMANDS,
                         ids=[f'{d}:{n}' for d, n, _ in COMMANDS])
def test_command_runs_as_written(doc: str, line: int, command: str) -> None:
    where = f'{doc}:{line}: {command}'
    _, words = tool_argv(command)
    placeholders = bool(PLACEHOLDER.search(command))
    program = words[0]
    if program == 'bash':
        script = REPO_ROOT / words[1]
        assert script.is_file(), f'{where}: no script {words[1]}'
        subprocess.run(['bash', '-n', str(script)], check=True)
        return
    if words[1] in ('-c', '-m'):
        return  # a one-off snippet or module run, not a beitlab tool
    tool = words[1]
    assert (REPO_ROOT / tool).is_file(), f'{where}: no file {tool}'
    for word in words[2:]:
        value = word.split('=', 1)[-1]
        if REPO_PATH.match(value) and not PLACEHOLDER.search(value):
            assert (REPO_ROOT / value).exists(), f'{where}: {value} does not exist'
    if placeholders:
        return
    proc = subprocess.run([sys.executable, '-c', PARSE_ONLY, *words[1:]], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and 'arguments parsed' in proc.stdout, (
        f'{where}\nexit {proc.returncode}\n{proc.stderr[-3000:]}')


# A repository path written anywhere in the documents (prose, tables, inline code), not only
# in commands: a renamed config or tool must take its mentions along.
NAMED_PATH = re.compile(r'(?<![\w/.-])((?:configs|tools|tests|projects)/[\w./-]*\w\.(?:py|sh|md|json))')


def test_every_path_the_documents_name_exists() -> None:
    missing = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for match in NAMED_PATH.finditer(line):
                if not (REPO_ROOT / match.group(1)).exists():
                    missing.append(f'{doc.name}:{number}: {match.group(1)}')
    assert not missing, 'paths named in the documents that do not exist:\n' + '\n'.join(missing)
