"""projects/example_project: its own mask generator and target, registered through
custom_imports, train the stock backbone for two iterations through tools/train.py."""
import importlib
import re

import numpy as np
import torch

from beitlab.checkpoint import safe_torch_load
from beitlab.registry import MASK_GENERATORS, TARGET_GENERATORS
from beitlab.utils import register_all_modules

from ..tools.test_mim_variant_configs import write_tiny_images
from ..tools_helpers import run_tool

CONFIG = 'projects/example_project/configs/simmim_vit-tiny_stripe-mask_sobel-target.py'


def test_example_parts_follow_the_contracts() -> None:
    importlib.import_module('projects.example_project.models.stripe_mask')
    importlib.import_module('projects.example_project.models.sobel_target')
    gen = MASK_GENERATORS.build(dict(type='StripeMaskGenerator', input_size=8, num_stripes=3))
    mask = gen()
    assert mask.shape == (8, 8) and mask.dtype == bool
    assert mask.all(0).sum() == 3 or mask.all(1).sum() == 3
    target = TARGET_GENERATORS.build(dict(type='SobelEdgeTarget', patch_size=4))
    img = torch.zeros(1, 3, 32, 32)
    img[..., 16:] = 1.0                         # one vertical edge between columns 15 and 16
    out = target(img)                           # [1, 64, 16]
    assert out.shape == (1, 64, 16)
    edge_patches = out.sum(-1).view(8, 8)
    assert torch.all(edge_patches[:, 3:5] > 0) and edge_patches[:, :3].sum() == 0


def test_example_project_trains_two_iterations(tmp_path) -> None:
    register_all_modules()  # also allow-lists mmengine's checkpoint types for safe_torch_load
    images = write_tiny_images(tmp_path / 'images')
    proc = run_tool('train.py', CONFIG, '--work-dir', tmp_path / 'work', '--cfg-options',
                    f'train_dataloader.dataset.data_root={images}', 'train_cfg.max_iters=2',
                    'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1')
    log = proc.stdout + proc.stderr
    losses = [float(x) for x in re.findall(r'Iter\(train\) \[\d/2\].*? loss: ([-\d.e+]+)', log)]
    assert len(losses) == 2 and all(np.isfinite(losses)), log[-3000:]
    assert safe_torch_load(tmp_path / 'work' / 'iter_2.pth')['meta']['iter'] == 2
