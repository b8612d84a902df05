"""Every shipped config loads and names only registered types (checked before any build),
inherits as README states, and the Fashion-MNIST MIM configs share their data."""
import ast
import glob
from pathlib import Path
from typing import List

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


def _bases(path: Path) -> List[Path]:
    """The files ``path``'s ``_base_`` names, resolved against its folder (read, not run)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            value = ast.literal_eval(node.value)
            names = [value] if isinstance(value, str) else list(value)
            return [(path.parent / n).resolve() for n in names]
    return []


def _is_base_file(path: Path) -> bool:
    return '_base_' in path.relative_to(REPO_ROOT).parts


BASE_FILES = sorted((REPO_ROOT / 'configs' / '_base_').rglob('*.py'))


@pytest.mark.parametrize('path', BASE_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT / 'configs')))
def test_base_files_inherit_nothing(path: Path) -> None:
    """README, Configs: files in configs/_base_/ inherit nothing."""
    assert _bases(path) == [], f'{path.relative_to(REPO_ROOT)} inherits {_bases(path)}'


@pytest.mark.parametrize('path', CONFIGS + PROJECT_CONFIGS,
                         ids=lambda p: p.split(str(REPO_ROOT) + '/')[-1])
def test_inheritance_is_base_files_and_at_most_one_sibling(path: str) -> None:
    """README, Configs: a config inherits configs/_base_/ files and at most one sibling config
    (same folder), and that sibling inherits only _base_/ files."""
    config = Path(path)
    bases = _bases(config)
    assert bases, f'{path} inherits nothing; expected at least a runtime base'
    for base in bases:
        assert base.is_file(), f'{path}: _base_ {base} does not exist'
    siblings = [b for b in bases if not _is_base_file(b)]
    assert len(siblings) <= 1, f'{path} inherits {len(siblings)} configs: {siblings}'
    for sibling in siblings:
        assert sibling.parent == config.parent, f'{path}: {sibling} is not in the same folder'
        deeper = [b for b in _bases(sibling) if not _is_base_file(b)]
        assert not deeper, f'{path} -> {sibling.name} -> {deeper}: two levels of configs'
