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


FMNIST_MIM = 'configs/beit/beit_vit-fmnist_fashion-mnist.py'
FMNIST_VARIANTS = ('configs/mae/mae_vit-fmnist_fashion-mnist.py',
                   'configs/simmim/simmim_vit-fmnist_fashion-mnist.py',
                   'configs/maskfeat/maskfeat_vit-fmnist_fashion-mnist.py',
                   'configs/beitv2/beitv2_vit-fmnist_fashion-mnist.py')


def _views(pipeline: list) -> list:
    """The pipeline without its mask step (each method may mask its own way)."""
    return [dict(t) for t in pipeline if t['type'] != 'GenerateMask']


@pytest.mark.parametrize('path', FMNIST_VARIANTS)
def test_fashion_mnist_variants_train_on_the_beit_data_and_backbone(path: str) -> None:
    """docs/variants.md: the variants differ from the BEiT Fashion-MNIST config in the method
    alone; the data come from one file, the backbone and normalisation must be equal."""
    beit, variant = Config.fromfile(REPO_ROOT / FMNIST_MIM), Config.fromfile(REPO_ROOT / path)
    shared = Config.fromfile(REPO_ROOT / 'configs/_base_/datasets/fashion-mnist_mim.py')
    for cfg in (beit, variant):
        loader = cfg.train_dataloader.to_dict()
        assert _views(loader['dataset'].pop('pipeline')) == _views(cfg.train_pipeline)
        assert _views(cfg.train_pipeline) == _views(shared.train_pipeline) == \
            [dict(t) for t in shared.view_transforms] + [dict(type='PackTwoViewInputs')]
        shared_loader = shared.train_dataloader.to_dict()
        shared_loader['dataset'].pop('pipeline')
        assert loader == shared_loader
    assert beit.train_pipeline == shared.train_pipeline   # BEiT masks as the shared file does
    backbone = {k: v for k, v in variant.model.backbone.items() if k != 'out_indices'}
    assert backbone == {k: v for k, v in beit.model.backbone.items() if k != 'out_indices'}
    assert variant.model.data_preprocessor == beit.model.data_preprocessor
