"""One resolution of ``modules=`` for the hooks that transform submodules: unwrapping,
dotted paths, container expansion, de-duplication and the errors; and the three hooks
(activation checkpointing, channels-last, compile) act on the same modules for one spec."""
from typing import List

import pytest
import torch
from mmengine.model import MMDistributedDataParallel
from torch import nn

from beitlab.engine.hooks.activation_checkpoint_hook import ActivationCheckpointHook
from beitlab.engine.hooks.channels_last_hook import ChannelsLastHook
from beitlab.engine.hooks.compile_hook import CompileHook
from beitlab.engine.hooks.module_targets import (
    normalize_module_spec,
    resolve_module_targets,
    unwrap_model,
)


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class _Model(nn.Module):
    """``backbone.blocks`` a ModuleList, ``backbone.stages`` a Sequential, ``heads`` a
    ModuleDict, ``neck`` a plain module."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.blocks = nn.ModuleList(_Block() for _ in range(3))
        self.backbone.stages = nn.Sequential(_Block(), _Block())
        self.neck = _Block()
        self.heads = nn.ModuleDict({'cls': _Block(), 'seg': _Block()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.backbone.blocks:
            x = blk(x)
        x = self.neck(self.backbone.stages(x))
        return self.heads['cls'](x) + self.heads['seg'](x)


class _Wrapper(nn.Module):
    """A stand-in for a registered model wrapper (``.module`` holds the algorithm)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


def names(model: nn.Module, spec) -> List[str]:
    return [name for name, _ in resolve_module_targets(model, spec)]


def test_containers_stand_for_their_children_one_level_down() -> None:
    model = _Model()
    assert names(model, 'backbone.blocks') == ['backbone.blocks.0', 'backbone.blocks.1',
                                               'backbone.blocks.2']
    assert names(model, 'backbone.stages') == ['backbone.stages.0', 'backbone.stages.1']
    assert names(model, 'heads') == ['heads.cls', 'heads.seg']
    assert names(model, 'neck') == ['neck']
    assert names(model, 'backbone.blocks.1.conv') == ['backbone.blocks.1.conv']
    # a plain module is not expanded, even one with children
    assert names(model, 'backbone') == ['backbone']
    # '' is the whole model
    [(name, module)] = resolve_module_targets(model, '')
    assert name == '' and module is model
    # the modules themselves, not copies
    assert [m for _, m in resolve_module_targets(model, 'backbone.blocks')] == \
        list(model.backbone.blocks)


def test_lists_keep_order_and_each_module_once() -> None:
    model = _Model()
    assert names(model, ['neck', 'backbone.blocks', 'backbone.blocks.0', 'neck']) == \
        ['neck', 'backbone.blocks.0', 'backbone.blocks.1', 'backbone.blocks.2']
    assert names(model, ('backbone.stages.1', 'backbone.stages')) == \
        ['backbone.stages.1', 'backbone.stages.0']


def test_wrappers_are_unwrapped() -> None:
    model = _Model()
    ddp = MMDistributedDataParallel.__new__(MMDistributedDataParallel)
    nn.Module.__init__(ddp)
    ddp.module = model
    assert unwrap_model(ddp) is model
    compiled = torch.compile(model, backend='eager')
    assert unwrap_model(compiled) is model
    assert unwrap_model(model) is model
    assert names(ddp, 'backbone.blocks') == names(model, 'backbone.blocks')
    assert names(compiled, 'neck') == ['neck']
    # a module that merely has a `.module` attribute is no registered wrapper
    assert unwrap_model(_Wrapper(model)) is not model


def test_errors_name_the_path_and_what_exists() -> None:
    model = _Model()
    with pytest.raises(KeyError, match=r"SomeHook: model _Model has no submodule "
                                       r"'backbone\.blokcs': 'backbone' has no child 'blokcs' "
                                       r"\(its children: \['blocks', 'stages'\]\)"):
        resolve_module_targets(model, 'backbone.blokcs', 'SomeHook')
    with pytest.raises(KeyError, match=r"the model has no child 'nope'"):
        resolve_module_targets(model, ['neck', 'nope'])
    with pytest.raises(KeyError, match="'backbone.blocks.7'"):
        resolve_module_targets(model, 'backbone.blocks.7')
    model.backbone.empty = nn.ModuleList()
    with pytest.raises(ValueError, match=r"'backbone\.empty' is an empty ModuleList"):
        resolve_module_targets(model, 'backbone.empty')
    with pytest.raises(ValueError, match='modules is empty'):
        normalize_module_spec([], 'SomeHook')
    with pytest.raises(TypeError, match=r'SomeHook: modules must be .* got 3'):
        normalize_module_spec(3, 'SomeHook')
    with pytest.raises(TypeError, match='got'):
        normalize_module_spec(['neck', None], 'SomeHook')
    assert normalize_module_spec('neck', 'SomeHook') == ['neck']


def _activation_checkpointed(model: nn.Module) -> set:
    return {name for name, m in model.named_modules()
            if getattr(m, '_beitlab_activation_checkpointed', False)}


def _channels_last(model: nn.Module) -> set:
    return {name for name, m in model.named_modules() if getattr(m, '_beitlab_channels_last', False)}


def _compiled(model: nn.Module) -> set:
    return {name for name, m in model.named_modules()
            if getattr(m, '_compiled_call_impl', None) is not None}


SPECS = ['backbone.blocks', 'backbone.stages', ['heads', 'neck', 'backbone.blocks.1'], '']


@pytest.mark.parametrize('spec', SPECS, ids=str)
def test_the_three_hooks_target_the_same_modules(spec) -> None:
    expected = set(names(_Model(), spec))
    found = {}
    for hook_cls, marked, extra in ((ActivationCheckpointHook, _activation_checkpointed, {}),
                                    (ChannelsLastHook, _channels_last, {}),
                                    (CompileHook, _compiled, dict(backend='eager'))):
        model = _Model()
        count = hook_cls(modules=spec, **extra).apply(model)
        found[hook_cls.__name__] = marked(model)
        assert count == len(expected), hook_cls.__name__
    assert all(v == expected for v in found.values()), (expected, found)


def test_hooks_keep_values_and_count_only_new_work() -> None:
    torch.manual_seed(0)
    model = _Model()
    x = torch.randn(2, 4, 5, 5)
    expected = model(x)
    assert ActivationCheckpointHook(modules='backbone.blocks').apply(model) == 3
    assert ActivationCheckpointHook(modules=['backbone.blocks.0']).apply(model) == 0
    assert ChannelsLastHook(modules='backbone.stages').apply(model) == 2
    assert ChannelsLastHook(modules='backbone.stages').apply(model) == 0
    assert model.backbone.stages[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    model.train()
    out = model(x.requires_grad_())
    out.sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert all(p.grad is not None for p in model.parameters())


def test_hooks_check_the_spec_when_built() -> None:
    for hook_cls in (ActivationCheckpointHook, ChannelsLastHook, CompileHook):
        with pytest.raises(ValueError, match=f'{hook_cls.__name__}: modules is empty'):
            hook_cls(modules=[])
        with pytest.raises(KeyError, match=f"{hook_cls.__name__}: model _Model has no submodule 'x'"):
            hook_cls(modules='x').apply(_Model())
        assert hook_cls(modules='neck').modules == ['neck']
