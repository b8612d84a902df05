"""Every shipped config loads and names only registered types (checked before any build)."""
import glob

import pytest
from mmengine.config import Config

from beitlab.utils import check_config_types, register_all_modules

from .tools_helpers import REPO_ROOT

CONFIGS = sorted(p for p in glob.glob(str(REPO_ROOT / 'configs' / '**' / '*.py'), recursive=True)
                 if '/_base_/' not in p)


def test_configs_exist() -> None:
    assert len(CONFIGS) > 10


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.split('configs/')[-1])
def test_config_types_resolve(path: str) -> None:
    register_all_modules()
    check_config_types(Config.fromfile(path))


PROJECT_CONFIGS = sorted(glob.glob(str(REPO_ROOT / 'projects' / '*' / 'configs' / '**' / '*.py'),
                               recursive=True))


@pytest.mark.parametrize('path', CONFIGS + PROJECT_CONFIGS,
                         ids=lambda p: p.split(str(REPO_ROOT) + '/')[-1])
def test_checkpoint_hook_is_atomic(path: str) -> None:
    """A checkpoint hook that deletes before it saves loses the run when killed in between
    (docs/reliability.md): every config that saves checkpoints uses AtomicCheckpointHook."""
    from mmengine.registry import HOOKS

    from beitlab.engine.hooks.atomic_checkpoint_hook import AtomicCheckpointHook
    register_all_modules()
    cfg = Config.fromfile(path)
    hook = cfg.get('default_hooks', {}).get('checkpoint')
    if hook is None:
        return
    with HOOKS.switch_scope_and_registry(cfg.get('default_scope')) as registry:
        cls = registry.get(hook['type'])
    assert cls is not None and issubclass(cls, AtomicCheckpointHook), \
        f"{path}: default_hooks.checkpoint.type={hook['type']!r}; expected " \
        f"'beitlab.AtomicCheckpointHook'"
