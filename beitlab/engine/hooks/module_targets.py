"""Which submodules a model-transforming hook acts on, resolved one way for every such hook.

``ActivationCheckpointHook``, ``ChannelsLastHook`` and ``CompileHook`` all take
``modules=``: one dotted submodule path or a list of them. :func:`resolve_module_targets`
turns that spec into the modules to act on:

- the model is unwrapped first: a model wrapper (DDP, beitlab's CPU DDP, anything in
  mmengine's ``MODEL_WRAPPERS``) and a ``torch.compile`` wrapper (``OptimizedModule``), so
  paths are the algorithm's own (``'backbone.blocks'``, not ``'module.backbone.blocks'``);
- ``''`` names the whole (unwrapped) model;
- a path that names a container (``nn.ModuleList``, ``nn.Sequential``, ``nn.ModuleDict``)
  stands for its children, one level down: ``'backbone.blocks'`` is every Transformer
  block, however the backbone stores them;
- a module reached twice (``['backbone.blocks', 'backbone.blocks.0']``) is listed once, in
  the order of first appearance.

Nothing here registers.
"""
from typing import List, Sequence, Tuple, Union

from torch import nn

from beitlab.utils.model_wrappers import unwrap_model

__all__ = ['ModuleSpec', 'CONTAINER_TYPES', 'unwrap_model', 'normalize_module_spec',
           'resolve_module_targets']

ModuleSpec = Union[str, Sequence[str]]

# Containers stand for their children: a ModuleList / ModuleDict has no forward of its own,
# and a Sequential of blocks is meant block by block (as a ModuleList of blocks is).
CONTAINER_TYPES = (nn.ModuleList, nn.Sequential, nn.ModuleDict)


def normalize_module_spec(modules: ModuleSpec, owner: str) -> List[str]:
    """``modules`` as a list of dotted paths; ``owner`` (the hook's name) heads the errors.

    Raises:
        TypeError: ``modules`` is neither a string nor a sequence of strings.
        ValueError: the sequence is empty (the hook would do nothing).
    """
    if isinstance(modules, str):
        return [modules]
    if not isinstance(modules, Sequence) or not all(isinstance(m, str) for m in modules):
        raise TypeError(f'{owner}: modules must be a dotted submodule path or a list of them '
                        f"(e.g. 'backbone.blocks'), got {modules!r}")
    if not modules:
        raise ValueError(f"{owner}: modules is empty; name at least one submodule path "
                         f"(e.g. 'backbone.blocks', or '' for the whole model)")
    return list(modules)


def _get_submodule(model: nn.Module, path: str, owner: str) -> nn.Module:
    module = model
    for depth, part in enumerate(path.split('.')):
        children = dict(module.named_children())
        if part not in children:
            prefix = '.'.join(path.split('.')[:depth])
            where = f'{prefix!r}' if prefix else 'the model'
            raise KeyError(f'{owner}: model {type(model).__name__} has no submodule {path!r}: '
                           f'{where} has no child {part!r} (its children: '
                           f'{sorted(children) or "none"})')
        module = children[part]
    return module


def resolve_module_targets(model: nn.Module, modules: ModuleSpec,
                           owner: str = 'module targets') -> List[Tuple[str, nn.Module]]:
    """``(path, module)`` for every module that ``modules`` names in ``model`` (see above).

    Args:
        model: the algorithm, possibly wrapped (DDP, ``torch.compile``).
        modules: a dotted path or a list of them; ``''`` is the whole model.
        owner: the hook's name, for the errors.

    Returns:
        The targets in spec order, containers replaced by their children
        (``'backbone.blocks.0'``, ``'backbone.blocks.1'``, ...), each module once.

    Raises:
        KeyError: a path that does not exist, naming the missing part and the children found.
        ValueError: a path that names an empty container.
    """
    paths = normalize_module_spec(modules, owner)
    model = unwrap_model(model)
    targets: List[Tuple[str, nn.Module]] = []
    seen = set()
    for path in paths:
        sub = _get_submodule(model, path, owner) if path else model
        if isinstance(sub, CONTAINER_TYPES):
            found = [(f'{path}.{name}' if path else name, child)
                     for name, child in sub.named_children()]
            if not found:
                raise ValueError(f'{owner}: {path!r} is an empty {type(sub).__name__}; '
                                 f'nothing to apply to')
        else:
            found = [(path, sub)]
        for name, child in found:
            if id(child) not in seen:
                seen.add(id(child))
                targets.append((name, child))
    return targets
