"""Every MIM variant's tiny config trains two iterations through tools/train.py, and every
variant config (paper recipe, Fashion-MNIST) names only registered types."""
import glob
import re
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from beitlab.checkpoint import safe_torch_load
from beitlab.utils import register_all_modules
from beitlab.utils.config_check import check_config_types

from ..tools_helpers import REPO_ROOT, run_tool

VARIANTS = ('mae', 'simmim', 'maskfeat', 'beitv2', 'vqkd', 'peco')
TINY = sorted(p for v in VARIANTS for p in glob.glob(f'configs/{v}/*tiny*.py', root_dir=REPO_ROOT))
ALL = sorted(p for v in VARIANTS for p in glob.glob(f'configs/{v}/*.py', root_dir=REPO_ROOT))


def write_tiny_images(folder: Path, num: int = 8) -> Path:
    """``num`` random 36 x 36 RGB PNGs (the tiny configs crop 32 px views from them)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(num):
        Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(folder / f'{i}.png')
    return folder


def test_every_variant_has_a_tiny_and_a_recipe_config() -> None:
    for variant in VARIANTS:
        names = [Path(p).name for p in ALL if p.startswith(f'configs/{variant}/')]
        assert any('tiny' in n for n in names), variant
        assert any('tiny' not in n for n in names), variant


@pytest.mark.parametrize('config', ALL)
def test_variant_config_types_are_registered(config: str) -> None:
    register_all_modules()
    check_config_types(Config.fromfile(str(REPO_ROOT / config)))


@pytest.mark.parametrize('config', TINY)
def test_tiny_config_trains_two_iterations(config: str, tmp_path) -> None:
    # As written: the tiny configs read the images shipped in tests/data/tiny_images.
    proc = run_tool('train.py', config, '--work-dir', tmp_path)
    log = proc.stdout + proc.stderr
    losses = [float(x) for x in re.findall(r'Iter\(train\) \[\d/2\].*? loss: ([-\d.e+nai]+)', log)]
    assert len(losses) == 2 and all(np.isfinite(losses)), log[-3000:]
    ckpt = safe_torch_load(tmp_path / 'iter_2.pth')
    assert ckpt['meta']['iter'] == 2
