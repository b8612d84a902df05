"""The fast path (beitlab/engine/fast_path.py) and the compiled BEiT loss
(beitlab/engine/compiled_loss.py): the config pieces it switches on, the same loss and
gradients as the eager model, and one warning then eager training when compiling fails.

torch.compile runs with the 'eager' / 'aot_eager' backends only (dynamo traces the whole
loss with fullgraph=True, AOTAutograd builds its backward; no C++ is compiled), on a ViT
of 2 layers and 32 dims. Nothing here is timed.
"""
import copy
import logging
import random
import uuid
from typing import Iterator, List

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.structures import BaseDataElement

from beitlab.engine import compiled_loss as compiled_loss_module
from beitlab.engine.compiled_loss import (
    CompiledMIMLoss,
    install_compiled_loss,
    masked_token_loss,
    suspend_compiled_loss,
    uninstall_compiled_loss,
)
from beitlab.engine.fast_path import COMPILED_LOSS_HOOK, FAST_PATH_PIECES, apply_fast_path, fast_path_pieces
from beitlab.masking.blockwise import BlockwiseMaskGenerator
from beitlab.registry import MODELS
from beitlab.utils.setup_env import register_all_modules
from tests.tools_helpers import REPO_ROOT, run_tool

register_all_modules()

TINY = 'configs/beit/mim_vit-tiny_1xb8-2it_tiny.py'
B, IMG, GRID, K = 4, 16, 4, 6


def tiny_beit(**backbone) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = dict(type='BEiT',
               backbone=dict(type='BEiTViT', arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                                       feedforward_channels=64),
                             img_size=IMG, patch_size=4, out_type='raw', use_abs_pos_emb=True,
                             use_shared_rel_pos_bias=True, layer_scale_init_value=0.1, **backbone),
               target_generator=dict(type='VisualTokenTarget', tokenizer=dict(
                   type='DVAE', vocab_size=16, downsample=4, hidden_channels=8, embed_dim=8)),
               head=dict(type='MIMHead', in_channels=32, vocab_size=16))
    model = MODELS.build(cfg)
    model.train()
    return model


def batch(seed: int = 0, exact: bool = True) -> tuple:
    """Two views ``[B, 3, 16, 16]`` and samples with block-wise masks of ``K`` patches
    (``exact=False``: one mask with a patch fewer)."""
    gen = torch.Generator().manual_seed(seed)
    views = [torch.randn(B, 3, IMG, IMG, generator=gen), torch.rand(B, 3, IMG, IMG, generator=gen)]
    masker = BlockwiseMaskGenerator(input_size=GRID, num_masking_patches=K, min_num_patches=2,
                                    exact=True)
    random.seed(seed)
    masks = [masker() for _ in range(B)]
    if not exact:
        masks[1] = masks[1].copy()
        masks[1][np.argwhere(masks[1])[0][0], np.argwhere(masks[1])[0][1]] = False
    return views, [BaseDataElement(mask=m) for m in masks]


def loss_and_grads(model: torch.nn.Module, views, samples, autocast: bool = False):
    model.zero_grad()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        losses = model.loss(views, samples)
    losses['loss'].backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach().float() for k, v in losses.items()}, grads


@pytest.fixture
def logged() -> Iterator[List[logging.LogRecord]]:
    """Records of the current mmengine logger (where the fast path's warnings go)."""
    logger = MMLogger.get_instance(f'test_fast_path-{uuid.uuid4()}')
    records: List[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)
    handler = Keep(level=logging.INFO)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def warnings_of(records: List[logging.LogRecord]) -> List[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.WARNING]


# ----------------------------------------------------------------------------- same values
def test_masked_token_loss_equals_the_eager_loss_and_its_gradients() -> None:
    """fp32: the static-shape loss is BEiT.loss after the tokenizer, to rounding."""
    model = tiny_beit()
    views, samples = batch()
    ref, ref_grads = loss_and_grads(model, views, samples)
    compiled = CompiledMIMLoss(copy.deepcopy(model), backend='aot_eager')
    model_c = compiled.model
    model_c.loss = compiled
    losses, grads = loss_and_grads(model_c, views, samples)
    assert compiled.active and compiled.compiled_calls == 1
    torch.testing.assert_close(losses['loss'], ref['loss'], rtol=1e-5, atol=1e-6)
    assert losses['mlm_acc'] == ref['mlm_acc']
    assert grads.keys() == ref_grads.keys() and len(grads) > 10
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_under_bf16_autocast_loss_and_gradients_agree_with_eager() -> None:
    model = tiny_beit()
    fast = copy.deepcopy(model)
    assert install_compiled_loss(fast, backend='aot_eager') is not None
    views, samples = batch(1)
    ref, ref_grads = loss_and_grads(model, views, samples, autocast=True)
    losses, grads = loss_and_grads(fast, views, samples, autocast=True)
    assert fast.loss.compiled_calls == 1
    torch.testing.assert_close(losses['loss'], ref['loss'], rtol=2e-2, atol=1e-2)
    for name, grad in grads.items():
        scale = ref_grads[name].abs().max().clamp_min(1e-6)
        assert (grad - ref_grads[name]).abs().max() <= 0.05 * scale, name


def test_one_fast_path_step_matches_an_fp32_eager_step(monkeypatch) -> None:
    """The whole fast path (bf16 autocast, fused AdamW, bf16 tokenizer, compiled loss) on
    the tiny config: same loss as fp32 eager within bf16 rounding, and the update moves
    the parameters the same way."""
    # bf16 autocast runs on any CPU (slowly without native bf16), so the test does too
    monkeypatch.setattr('beitlab.engine.fast_path.bf16_supported', lambda device: True)
    cfg = Config.fromfile(REPO_ROOT / TINY)
    fast_cfg = copy.deepcopy(cfg)
    changes = apply_fast_path(fast_cfg, True, device_type='cpu')
    assert any('compiled loss' in c for c in changes)
    torch.manual_seed(0)
    ref = MODELS.build(cfg.model)
    fast = MODELS.build(fast_cfg.model)
    fast.load_state_dict(ref.state_dict())
    # the tokenizer's weights are not in the model's state dict (VisualTokenTarget)
    fast.target_generator.tokenizer.load_state_dict(ref.target_generator.tokenizer.state_dict())
    ref.train(), fast.train()
    assert install_compiled_loss(fast, backend='aot_eager') is not None
    grid = 8
    masker = BlockwiseMaskGenerator(input_size=grid, num_masking_patches=24, min_num_patches=4,
                                    exact=True)
    gen = torch.Generator().manual_seed(0)
    views = torch.randint(0, 256, (2, 3, 32, 32), generator=gen, dtype=torch.uint8)
    data = dict(inputs=[views, views.flip(-1)],
                data_samples=[BaseDataElement(mask=masker()) for _ in range(2)])
    before = {n: p.detach().clone() for n, p in ref.named_parameters()}
    wrappers = {}
    with DefaultScope.overwrite_default_scope('beitlab'):
        for name, model, c in (('ref', ref, cfg), ('fast', fast, fast_cfg)):
            wrappers[name] = build_optim_wrapper(model, copy.deepcopy(c.optim_wrapper))
    assert type(wrappers['fast']).__name__ == 'AutocastOptimWrapper'
    assert wrappers['fast'].optimizer.defaults.get('fused') is True
    out_ref = ref.train_step(copy.deepcopy(data), wrappers['ref'])
    out_fast = fast.train_step(copy.deepcopy(data), wrappers['fast'])
    assert fast.loss.compiled_calls == 1
    torch.testing.assert_close(out_fast['loss'], out_ref['loss'], rtol=2e-2, atol=1e-2)
    moved = 0
    for name, p_ref in ref.named_parameters():
        step_ref = p_ref.detach() - before[name]
        step_fast = dict(fast.named_parameters())[name].detach() - before[name]
        if step_ref.abs().max() > 0:
            moved += 1
            cos = torch.nn.functional.cosine_similarity(step_ref.flatten(), step_fast.flatten(), dim=0)
            assert cos > 0.9, (name, float(cos))
    assert moved > 10


# ----------------------------------------------------------------------------- fallbacks
def test_a_compile_call_that_raises_warns_once_and_trains_eagerly(logged) -> None:
    def broken_compile(fn, **kwargs):
        raise RuntimeError('compiler exploded')
    model = tiny_beit()
    ref = copy.deepcopy(model)
    compiled = CompiledMIMLoss(model, backend='inductor', compile_fn=broken_compile)
    model.loss = compiled
    assert not compiled.active
    (message, ) = warnings_of(logged)
    assert 'failed, training runs eagerly: RuntimeError: compiler exploded' in message
    views, samples = batch()
    torch.testing.assert_close(model.loss(views, samples)['loss'], ref.loss(views, samples)['loss'])
    ow = build_optim_wrapper(model, dict(optimizer=dict(type='AdamW', lr=1e-2)))
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(2):
        ow.update_params(model.loss(views, samples)['loss'])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert len(warnings_of(logged)) == 1


def test_a_compiled_function_that_fails_on_its_first_call_warns_once(logged) -> None:
    """Compilation happens at the first call (torch.compile is lazy): a failure there gives
    the eager loss of that very batch and every later one, with one warning."""
    calls = []

    def lazy_broken_compile(fn, **kwargs):
        def run(*args):
            calls.append(1)
            raise torch._dynamo.exc.BackendCompilerFailed(lambda: None, RuntimeError('no cc1plus'), None)
        return run
    model = tiny_beit()
    ref = copy.deepcopy(model)
    compiled = install_compiled_loss(model, backend='inductor', compile_fn=lazy_broken_compile)
    assert compiled is not None and compiled.active and warnings_of(logged) == []
    views, samples = batch()
    for _ in range(3):
        losses = model.loss(views, samples)
    torch.testing.assert_close(losses['loss'], ref.loss(views, samples)['loss'])
    assert len(calls) == 1 and not compiled.active
    (message, ) = warnings_of(logged)
    assert 'BackendCompilerFailed' in message and 'training runs eagerly' in message


def test_without_a_cpp_compiler_inductor_is_not_tried(logged, monkeypatch) -> None:
    from torch._inductor import cpp_builder

    def no_compiler() -> str:
        raise RuntimeError('No working C++ compiler found in torch._inductor.config.cpp.cxx')
    monkeypatch.setattr(cpp_builder, 'get_cpp_compiler', no_compiler)
    tried = []
    compiled = CompiledMIMLoss(tiny_beit(), backend='inductor',
                               compile_fn=lambda fn, **kw: tried.append(1) or fn)
    assert tried == [] and not compiled.active
    (message, ) = warnings_of(logged)
    assert 'no C++ compiler' in message and 'g++' in message


def test_masks_of_different_sizes_take_the_eager_loss_with_one_warning(logged) -> None:
    model = tiny_beit()
    ref = copy.deepcopy(model)
    compiled = install_compiled_loss(model, backend='eager')
    views, samples = batch(2, exact=False)
    for _ in range(2):
        losses = model.loss(views, samples)
    torch.testing.assert_close(losses['loss'], ref.loss(views, samples)['loss'])
    assert compiled.compiled_calls == 0 and compiled.active
    (message, ) = warnings_of(logged)
    assert 'different numbers of patches (5..6)' in message and 'exact=True' in message
    model.loss(*batch(3))
    assert compiled.compiled_calls == 1


def test_install_covers_beit_only_and_can_be_undone_or_suspended(logged) -> None:
    from beitlab.models.algorithms.beitv2 import BEiTv2
    model = tiny_beit()
    first = install_compiled_loss(model, backend='eager')
    assert install_compiled_loss(model, backend='eager') is first
    with suspend_compiled_loss(model):
        model.loss(*batch())
    assert first.compiled_calls == 0
    model.loss(*batch())
    assert first.compiled_calls == 1
    assert uninstall_compiled_loss(model) and not uninstall_compiled_loss(model)
    assert model.loss.__func__ is type(model).loss
    windowed = tiny_beit(window_size=2)
    assert install_compiled_loss(windowed, backend='eager') is None
    assert 'windowed attention' in logged[-1].getMessage()
    assert compiled_loss_module.compiled_loss_problem(object.__new__(BEiTv2)).startswith('BEiTv2')
    with pytest.raises(ValueError, match='shared_bias'):
        m = tiny_beit()
        views, samples = batch()
        mask = torch.stack([torch.as_tensor(s.mask) for s in samples]).flatten(1)
        index = mask.nonzero()[:, 1].view(B, K)
        masked_token_loss(m.backbone, m.head, views[0], mask, index, index, None)



def test_install_reaches_the_algorithm_inside_a_compiled_model(logged) -> None:
    """A ``torch.compile`` wrapper is unwrapped like DDP: the loss is installed on (and
    removed from) the algorithm itself, not on the wrapper, where ``forward`` would miss it."""
    model = tiny_beit()
    compiled_model = torch.compile(model, backend='eager')
    installed = install_compiled_loss(compiled_model, backend='eager')
    assert installed is not None and install_compiled_loss(model, backend='eager') is installed
    model.loss(*batch())
    assert installed.compiled_calls == 1
    assert uninstall_compiled_loss(compiled_model)
    assert model.loss.__func__ is type(model).loss

# ----------------------------------------------------------------------------- the switch
def test_fast_path_pieces_and_their_config_changes(monkeypatch) -> None:
    assert fast_path_pieces(True) == dict.fromkeys(FAST_PATH_PIECES, True)
    assert not any(fast_path_pieces(False).values()) and not any(fast_path_pieces(None).values())
    assert fast_path_pieces(dict(compile=False)) == dict(dict.fromkeys(FAST_PATH_PIECES, True),
                                                         compile=False)
    with pytest.raises(ValueError, match=r"unknown piece\(s\) \['compiel'\]"):
        fast_path_pieces(dict(compiel=False))
    with pytest.raises(ValueError, match='expected True, False or a dict'):
        fast_path_pieces('yes')

    monkeypatch.setattr('beitlab.engine.fast_path.bf16_supported', lambda device: True)
    cfg = Config.fromfile(REPO_ROOT / TINY)
    assert apply_fast_path(cfg) == []              # the tiny config leaves it off
    changes = apply_fast_path(cfg, True, device_type='cpu')
    assert len(changes) == 5 and cfg.fast_path is True
    assert cfg.optim_wrapper.type == 'beitlab.AutocastOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert cfg.optim_wrapper.optimizer.fused is True
    assert cfg.model.target_generator.bf16 is True
    (mask_step, ) = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'GenerateMask']
    assert mask_step.mask_generator.exact is True
    assert [h.type for h in cfg.custom_hooks].count(COMPILED_LOSS_HOOK) == 1
    assert apply_fast_path(cfg, True) == []        # applied twice: nothing more to change

    cfg = Config.fromfile(REPO_ROOT / TINY)
    cfg.fast_path = dict(compile=False, bf16=False)
    changes = apply_fast_path(cfg, True, device_type='cpu')
    assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'
    assert not any(h.type == COMPILED_LOSS_HOOK for h in cfg.get('custom_hooks', []))
    assert cfg.optim_wrapper.optimizer.fused is True and len(changes) == 3

    monkeypatch.setattr('beitlab.engine.fast_path.bf16_supported', lambda device: False)
    cfg = Config.fromfile(REPO_ROOT / TINY)
    changes = apply_fast_path(cfg, True, device_type='cpu')
    assert 'bf16 skipped: this CPU has no native bfloat16' in changes
    assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'


def test_train_py_logs_the_fast_path_and_trains(tmp_path) -> None:
    """``--fast`` through tools/train.py (compiling left out: that is what the tests above
    check without a C++ build)."""
    proc = run_tool('train.py', TINY, '--fast', '--work-dir', str(tmp_path),
                    '--cfg-options', 'fast_path.compile=False')
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'fast path: ' in log and 'fused AdamW' in log and 'bf16 tokenizer' in log
    assert 'exact mask counts' in log and 'compiled loss' not in log
    assert 'Iter(train) [2/2]' in log, proc.stdout[-2000:]


def test_the_fashion_mnist_beit_config_takes_the_fast_path(monkeypatch) -> None:
    monkeypatch.setattr('beitlab.engine.fast_path.bf16_supported', lambda device: True)
    path = REPO_ROOT / 'configs/beit/beit_vit-fmnist_fashion-mnist.py'
    cfg = Config.fromfile(path)
    pieces = fast_path_pieces(cfg.fast_path)
    assert [name for name, on in pieces.items() if not on] == ['tokenizer_bf16']
    changes = apply_fast_path(cfg, device_type='cpu')
    assert len(changes) == 4 and cfg.custom_hooks[-1].type == COMPILED_LOSS_HOOK
    assert not cfg.model.target_generator.get('bf16', False)
    cfg = Config.fromfile(path)
    cfg.merge_from_dict({'fast_path': False})          # --cfg-options fast_path=False
    assert apply_fast_path(cfg) == [] and cfg.optim_wrapper.type == 'OptimWrapper'
    cfg = Config.fromfile(path)
    cfg.merge_from_dict({'fast_path.compile': False})  # --cfg-options fast_path.compile=False
    changes = apply_fast_path(cfg, device_type='cpu')
    assert len(changes) == 3 and not any('compiled' in c for c in changes)
