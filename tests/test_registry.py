"""Every registry is filled by register_all_modules, and every entry is documented."""
import subprocess
import sys

import pytest
from mmengine.registry import Registry

import beitlab.registry as registry_module
from beitlab.registry import ALL_REGISTRIES
from beitlab.utils import register_all_modules

from .tools_helpers import REPO_ROOT, run_tool


@pytest.fixture(scope='module', autouse=True)
def registered() -> None:
    register_all_modules()


# Registries that give the beitlab scope mmengine's (and torch's) entries through their
# parents and hold no beitlab entry yet.
PASS_THROUGH = ('optimizers', 'param_schedulers', 'vis_backends')


def test_all_registries_lists_every_registry() -> None:
    defined = {name for name, value in vars(registry_module).items()
               if isinstance(value, Registry) and value.scope == 'beitlab'}
    listed = {name for name in defined if any(getattr(registry_module, name) is r
                                              for r in ALL_REGISTRIES.values())}
    assert defined - listed == set(), f'registries missing from ALL_REGISTRIES: {defined - listed}'
    assert len(ALL_REGISTRIES) == len(defined)
    assert set(PASS_THROUGH) <= set(ALL_REGISTRIES)


@pytest.mark.parametrize('key', sorted(ALL_REGISTRIES))
def test_registry_is_filled_and_documented(key: str) -> None:
    registry = ALL_REGISTRIES[key]
    assert registry.__doc__ and registry.__doc__.strip(), f'registry {key} has no contract docstring'
    if key not in PASS_THROUGH:
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


def test_register_all_modules_leaves_the_downstream_libraries_alone() -> None:
    # modules built on mmseg / mmdet (ADAPTER_ONLY_MODULES) are imported by their adapter
    code = ('import sys; from beitlab.utils import register_all_modules; register_all_modules(); '
            'from beitlab.registry import TRANSFORMS; assert TRANSFORMS.get("GenerateMask"); '
            'sys.exit(sum(name in sys.modules for name in ("mmseg", "mmdet")))')
    assert subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT).returncode == 0


def test_list_registry_prints_every_entry() -> None:
    out = run_tool('misc/list_registry.py').stdout
    assert 'AutocastOptimWrapper' in out
    for key, registry in ALL_REGISTRIES.items():
        assert f'\n{key} ({registry.name}, ' in '\n' + out, f'registry {key} not listed'
        for name, obj in registry.module_dict.items():
            # (projects/ components registered by other tests in this process are not
            # part of the package the tool lists.)
            if obj.__module__.startswith('beitlab.'):
                assert name in out
