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
