"""Opt-in speed options: bf16 autocast wrapper, activation checkpointing, compile hook."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

from beitlab.engine.hooks.activation_checkpoint_hook import ActivationCheckpointHook
from beitlab.engine.hooks.channels_last_hook import ChannelsLastHook
from beitlab.engine.hooks.compile_hook import CompileHook
from beitlab.engine.optimizers.autocast_optim_wrapper import AutocastOptimWrapper
from beitlab.registry import OPTIM_WRAPPERS
from beitlab.utils.setup_env import register_all_modules


class _Blocks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Dropout(0.5)) for _ in range(2))

    def forward(self, x):
        for blk in self.backbone.blocks:
            x = x + blk(x)
        return x


def test_autocast_optim_wrapper_bf16_on_cpu():
    register_all_modules()
    assert OPTIM_WRAPPERS.get('AutocastOptimWrapper') is AutocastOptimWrapper
    model = nn.Linear(4, 4)
    ow = build_optim_wrapper(model, dict(type=AutocastOptimWrapper, dtype='bfloat16',
                                         optimizer=dict(type='SGD', lr=0.1)))
    with ow.optim_context(model):
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    before = model.weight.detach().clone()
    ow.update_params(out.float().pow(2).mean())
    assert model.weight.dtype == torch.float32 and not torch.equal(before, model.weight)
    with pytest.raises(ValueError, match='dtype'):
        build_optim_wrapper(model, dict(type=AutocastOptimWrapper, dtype='int8',
                                        optimizer=dict(type='SGD', lr=0.1)))


def test_activation_checkpointing_same_gradients():
    torch.manual_seed(0)
    ref = _Blocks()
    ckpt = _Blocks()
    ckpt.load_state_dict(ref.state_dict())
    assert ActivationCheckpointHook('backbone.blocks').apply(ckpt) == 2
    x = torch.randn(5, 8)
    grads = []
    for m in (ref, ckpt):
        torch.manual_seed(1)  # same dropout masks; checkpoint replays the RNG state
        m(x).square().sum().backward()
        grads.append([p.grad.clone() for p in m.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    with pytest.raises(KeyError, match='nope'):
        ActivationCheckpointHook(['nope']).apply(ckpt)


def test_compile_hook_keeps_state_dict_keys():
    m = _Blocks()
    keys = list(m.state_dict())
    x = torch.randn(3, 8)
    m.eval()
    expected = m(x)
    CompileHook(modules='backbone', backend='eager').apply(m)
    assert list(m.state_dict()) == keys
    torch.testing.assert_close(m(x), expected)


def test_compile_hook_compiles_each_module_of_a_module_list():
    model = nn.Module()
    model.backbone = nn.Module()
    model.backbone.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
    x = torch.randn(2, 4)
    expected = model.backbone.blocks[1](model.backbone.blocks[0](x))
    CompileHook(backend='eager').apply(model)  # default: modules='backbone.blocks'
    for block in model.backbone.blocks:
        assert block._compiled_call_impl is not None
    out = model.backbone.blocks[1](model.backbone.blocks[0](x))
    torch.testing.assert_close(out, expected)


def test_channels_last_hook_same_values():
    torch.manual_seed(0)
    model = nn.Module()
    model.target_generator = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                           nn.Conv2d(8, 4, 1))
    x = torch.randn(2, 3, 10, 10)
    expected = model.target_generator(x)
    keys = list(model.state_dict())
    # a Sequential stands for its three children (beitlab.engine.hooks.module_targets)
    assert ChannelsLastHook().apply(model) == 3
    assert ChannelsLastHook().apply(model) == 0  # idempotent
    w = model.target_generator[0].weight
    assert w.is_contiguous(memory_format=torch.channels_last)
    out = model.target_generator(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert list(model.state_dict()) == keys
