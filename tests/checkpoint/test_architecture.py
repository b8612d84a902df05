"""Layering: nothing under ``beitlab/utils`` or ``beitlab/checkpoint`` imports ``beitlab.models``
(the models import them, never the other way round). Every import statement counts, at any
depth (function-level imports included), relative ones resolved against the module."""
import ast
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from tests.tools_helpers import REPO_ROOT

LOWER_PACKAGES = ('beitlab/utils', 'beitlab/checkpoint')
FORBIDDEN = 'beitlab.models'


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported_modules(source: str, module: str, is_package: bool) -> Iterator[Tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``source``; ``from a import b``
    gives both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    package = module if is_package else module.rpartition('.')[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - (node.level - 1)]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            yield node.lineno, target
            for alias in node.names:
                yield node.lineno, f'{target}.{alias.name}'


def forbidden_imports(path: Path, source: str) -> List[str]:
    module = _module_name(path)
    return [f'{path.relative_to(REPO_ROOT)}:{line}: imports {name}'
            for line, name in imported_modules(source, module, path.name == '__init__.py')
            if name == FORBIDDEN or name.startswith(FORBIDDEN + '.')]


def test_the_checker_catches_each_form_of_import() -> None:
    path = REPO_ROOT / 'beitlab' / 'utils' / 'example.py'
    for source in ('import beitlab.models.backbones\n',
                   'from beitlab.models.backbones.beit_vit import BEiTViT\n',
                   'from beitlab import models\n',
                   'def f():\n    from ..models import tokenizers\n',
                   'class A:\n    def g(self):\n        import beitlab.models as m\n'):
        assert forbidden_imports(path, source), source
    package = REPO_ROOT / 'beitlab' / 'checkpoint' / 'layouts' / '__init__.py'
    assert forbidden_imports(package, 'from ...models import backbones\n')
    assert not forbidden_imports(package, 'from ..unwrap import select_prefix\n')
    assert not forbidden_imports(path, 'from beitlab.checkpoint import io\nimport beitlab.ops\n')


@pytest.mark.parametrize('folder', LOWER_PACKAGES)
def test_lower_layers_do_not_import_the_models(folder: str) -> None:
    files = sorted((REPO_ROOT / folder).rglob('*.py'))
    assert files, f'no Python files under {folder}'
    hits = [hit for path in files for hit in forbidden_imports(path, path.read_text())]
    assert not hits, '\n'.join(hits)
