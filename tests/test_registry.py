"""Every registry is filled by register_all_modules, and every entry is documented."""
import subprocess
import sys

import pytest

from beitlab.registry import ALL_REGISTRIES
from beitlab.utils import register_all_modules

from .tools_helpers import REPO_ROOT, run_tool


@pytest.fixture(scope='module', autouse=True)
def registered() -> None:
    register_all_modules()


@pytest.mark.parametrize('key', sorted(ALL_REGISTRIES))
def test_registry_is_filled_and_documented(key: str) -> None:
    registry = ALL_REGISTRIES[key]
    assert registry.__doc__ and registry.__doc__.strip(), f'registry {key} has no contract docstring'
    assert len(registry.module_dict) > 0, f'registry {key} is empty after register_all_modules()'
    undocumented = [name for name, obj in registry.module_dict.items()
                    if not (obj.__doc__ and obj.__doc__.strip())]
    assert not undocumented, f'{key}: undocumented entries {undocumented}'


def test_registered_under_class_name_only() -> None:
    for key, registry in ALL_REGISTRIES.items():
        for name, obj in registry.module_dict.items():
            assert name == obj.__name__, f'{key}: {obj.__name__} registered as alias {name!r}'


def test_importing_beitlab_registers_nothing() -> None:
    code = ('import beitlab, beitlab.registry as r; '
            'import sys; sys.exit(sum(len(x.module_dict) for x in r.ALL_REGISTRIES.values()))')
    assert subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT).returncode == 0


def test_list_registry_prints_every_entry() -> None:
    out = run_tool('misc/list_registry.py').stdout
    for key, registry in ALL_REGISTRIES.items():
        assert key in out
        for name, obj in registry.module_dict.items():
            # (projects/ components registered by other tests in this process are not
            # part of the package the tool lists.)
            if obj.__module__.startswith('beitlab.'):
                assert name in out
