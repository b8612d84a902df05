"""Check every ``type`` in a config before the Runner builds anything.

mmengine builds the dataloaders and hooks lazily, so a typo in a pipeline or a
hook would surface only after minutes of set-up. :func:`check_config_types` walks
the whole config, resolves each ``type`` in the registry its key implies and
raises one error naming the key, the registry, the bad name and the closest
registered names.
"""
import difflib
import importlib
from typing import Any, Iterator, List, Optional, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.registry import Registry
from mmengine.registry import root as mmengine_root

__all__ = ['UnknownTypeError', 'check_config_types']

# The config key that owns a nested dict decides the registry of its ``type``.
# Keys not listed inherit the registry of their parent (e.g. ``backbone`` inside
# ``model``); a top-level key not listed is not checked.
_KEY_TO_REGISTRY = {
    'model': 'MODELS',
    'data_preprocessor': 'MODELS',
    'tokenizer': 'TOKENIZERS',
    'target_generator': 'TARGET_GENERATORS',
    'mask_generator': 'MASK_GENERATORS',
    'dataset': 'DATASETS',
    'pipeline': 'TRANSFORMS',
    'transforms': 'TRANSFORMS',
    'sampler': 'DATA_SAMPLERS',
    'collate_fn': 'FUNCTIONS',
    'batch_sampler': 'DATA_SAMPLERS',
    'val_evaluator': 'METRICS',
    'test_evaluator': 'METRICS',
    'metrics': 'METRICS',
    'default_hooks': 'HOOKS',
    'custom_hooks': 'HOOKS',
    'optim_wrapper': 'OPTIM_WRAPPERS',
    'optimizer': 'OPTIMIZERS',
    'param_scheduler': 'PARAM_SCHEDULERS',
    'visualizer': 'VISUALIZERS',
    'vis_backends': 'VISBACKENDS',
    'log_processor': 'LOG_PROCESSORS',
    'train_cfg': 'LOOPS',
    'val_cfg': 'LOOPS',
    'test_cfg': 'LOOPS',
}
# Keys whose ``type`` means something else than a registered class.
# (``roi_layer``/``nms`` name mmcv ops that mmdet looks up by attribute, not registry.)
_OPAQUE_KEYS = {'roi_layer', 'nms', 'init_cfg', 'norm_cfg', 'act_cfg', 'conv_cfg', 'env_cfg', 'launcher',
                'custom_imports', 'auto_scale_lr', 'dist_cfg', 'mp_cfg', 'strategy'}
# Loops configured by keys (``by_epoch`` / ``max_iters``) have no ``type``; the
# model-level ``train_cfg``/``test_cfg`` of mmseg and mmdet are plain dicts.
_MODEL_LEVEL_PLAIN = {'train_cfg', 'test_cfg'}


class UnknownTypeError(KeyError):
    """A config names a ``type`` that no registry holds."""

    def __str__(self) -> str:  # KeyError quotes its message; print it plainly.
        return str(self.args[0])


# Registries whose dict keys are entry names, not roles (``default_hooks.logger``).
_NAMED_ENTRY_REGISTRIES = {'HOOKS'}
_BEITLAB_FAMILIES = {'tokenizer', 'target_generator', 'mask_generator', 'data_preprocessor'}
# Inside ``model`` a head's helpers (coders, assigners, prior generators) live in TASK_UTILS.
_MODEL_FAMILY = ('MODELS', 'TASK_UTILS')


def _root_registry(name: str) -> Optional[Registry]:
    from beitlab import registry as beitlab_registry
    if name in ('TOKENIZERS', 'TARGET_GENERATORS', 'MASK_GENERATORS'):
        return getattr(beitlab_registry, name)  # beitlab-only families
    return getattr(mmengine_root, name, None)


def _walk(node: Any, path: str, registry: Optional[str],
          in_model: bool) -> Iterator[Tuple[str, str, str]]:
    if isinstance(node, (dict, ConfigDict)):
        if 'type' in node and isinstance(node['type'], str) and registry is not None:
            yield path, registry, node['type']
        for key, value in node.items():
            if key in _OPAQUE_KEYS or key == 'type':
                continue
            if registry in _NAMED_ENTRY_REGISTRIES and 'type' not in node:
                child_registry = registry  # ``default_hooks``: the keys are entry names
            elif registry in _NAMED_ENTRY_REGISTRIES:
                # a hook's own arguments: a dataset, pipeline or mask generator is checked in
                # its registry; any other argument is not a registered type
                child_registry = _KEY_TO_REGISTRY.get(key)
            elif in_model and key in _MODEL_LEVEL_PLAIN:
                # mmseg/mmdet model train_cfg/test_cfg: assigners and samplers are TASK_UTILS.
                child_registry = 'TASK_UTILS'
            elif in_model and registry is not None:
                # Inside a model only beitlab's own families change the registry;
                # mmdet's ``sampler`` or ``loss_*`` keys stay in the model family.
                child_registry = _KEY_TO_REGISTRY[key] if key in _BEITLAB_FAMILIES else registry
            else:
                child_registry = _KEY_TO_REGISTRY.get(key, registry)
            yield from _walk(value, f'{path}.{key}' if path else key, child_registry,
                             in_model or key == 'model')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f'{path}[{i}]', registry, in_model)


def _registered_names(registry: Registry) -> List[str]:
    names = set()
    stack = [registry._get_root_registry()]
    while stack:
        reg = stack.pop()
        prefix = '' if reg.scope == 'mmengine' else f'{reg.scope}.'
        names.update(prefix + key for key in reg.module_dict)
        names.update(reg.module_dict)
        stack.extend(reg.children.values())
    return sorted(names)


def _resolves(root: Registry, scope: str, name: str) -> bool:
    try:
        importlib.import_module(f'{scope}.registry')  # creates the scope's child registries
    except ImportError:
        pass
    registry = root._search_child(scope)
    if registry is None:  # (not ``or``: an unfilled Registry has len 0 and is falsy)
        registry = root
    try:
        return registry.get(name) is not None
    except (KeyError, ImportError, AttributeError):
        return False


def check_config_types(cfg: Config) -> None:
    """Raise :class:`UnknownTypeError` for the first ``type`` no registry resolves.

    The message names the config key, the registry, the bad name and up to five
    close registered names.
    """
    scope = cfg.get('default_scope', None) or 'mmengine'
    for path, registry_name, type_name in _walk(cfg.to_dict() if isinstance(cfg, Config) else cfg,
                                                '', None, False):
        root = _root_registry(registry_name)
        if root is None or _resolves(root, scope, type_name):
            continue
        if path.startswith('model') and any(
                _resolves(_root_registry(other), scope, type_name) for other in _MODEL_FAMILY):
            # Modules nested in a tokenizer or target (an encoder, a teacher network)
            # are models too.
            continue
        candidates = _registered_names(root)
        close = difflib.get_close_matches(type_name, candidates, n=5, cutoff=0.5)
        hint = f'closest registered names: {", ".join(close)}' if close else \
            f'no close match among {len(candidates)} registered names'
        raise UnknownTypeError(
            f'config key {path}.type = {type_name!r} is not registered in the '
            f'{registry_name.lower()} registry (scope {scope!r}); {hint}. '
            f'Run `python tools/misc/list_registry.py` to see every registered name.')
