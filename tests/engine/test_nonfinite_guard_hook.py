"""NonFiniteGuardHook and the optimizer-wrapper step guard: skip, stop with the named error, roll back."""
import copy
import glob
import json
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from torch import nn

from beitlab.checkpoint import safe_torch_load
from beitlab.engine.hooks.nonfinite_guard_hook import NonFiniteGuardHook, module_groups
from beitlab.engine.optimizers.autocast_optim_wrapper import AutocastOptimWrapper
from beitlab.engine.optimizers.step_guard import install_step_guard, remove_step_guard
from beitlab.utils import register_all_modules
from tests.tools_helpers import REPO_ROOT, run_tool

CONFIG = REPO_ROOT / 'tests' / 'data' / 'configs' / 'toy_nonfinite.py'


def _wrapper(model: nn.Module, cls=OptimWrapper) -> OptimWrapper:
    return cls(optimizer=torch.optim.AdamW(model.parameters(), lr=0.1),
               clip_grad=dict(max_norm=0.05))


def _loss(model: nn.Module, nan: bool = False) -> torch.Tensor:
    x = torch.arange(12, dtype=torch.float32).view(3, 4) / 10
    loss = (model(x) ** 2).mean()
    return loss * float('nan') if nan else loss


def test_step_guard_skips_and_otherwise_equals_the_plain_wrapper() -> None:
    MessageHub.get_instance('step-guard-test')
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    reference = copy.deepcopy(model)
    seen = []

    def guard(wrapper, loss_finite, grad_norm):
        seen.append((bool(loss_finite), float(grad_norm)))
        return bool(loss_finite) and math.isfinite(float(grad_norm))

    wrapper = install_step_guard(_wrapper(model), guard)
    plain = _wrapper(reference)
    assert isinstance(wrapper, OptimWrapper) and type(wrapper).__name__ == 'StepGuardedOptimWrapper'

    before = copy.deepcopy(model.state_dict())
    wrapper.update_params(_loss(model, nan=True))
    assert seen[-1][0] is False and math.isnan(seen[-1][1])
    for key, value in model.state_dict().items():          # the step was not applied
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())
    assert not wrapper.optimizer.state                     # no moments, no step count

    for _ in range(2):                                      # finite steps: as mmengine's wrapper
        wrapper.update_params(_loss(model))
        plain.update_params(_loss(reference))
    for (key, value), ref in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(value, ref), key
    assert seen[-1][0] is True and seen[-1][1] > 0.05        # the norm before clipping
    assert wrapper.message_hub.get_scalar('train/grad_norm').current() == pytest.approx(seen[-1][1])

    remove_step_guard(wrapper)
    assert type(wrapper) is OptimWrapper
    autocast = install_step_guard(_wrapper(nn.Linear(4, 2), AutocastOptimWrapper), guard)
    assert isinstance(autocast, AutocastOptimWrapper)


def test_module_groups_rule() -> None:
    names = ['backbone.blocks.3.attn.qkv.weight', 'backbone.patch_embed.proj.weight',
             'backbone.cls_token', 'head.fc.weight', 'backbone.blocks.3.norm1.bias']
    groups = module_groups([(n, n) for n in names])
    assert groups == {'backbone.blocks.3': [names[0], names[4]],
                      'backbone.patch_embed': [names[1]], 'backbone': [names[2]],
                      'head.fc': [names[3]]}
    assert module_groups([(n, n) for n in names], ['backbone.blocks']) == \
        {'backbone.blocks': [names[0], names[4]]}


def _runner(work_dir, **options):
    from beitlab.engine.runner import BeitlabRunner
    register_all_modules()
    cfg = Config.fromfile(str(CONFIG))
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    cfg.visualizer.name = f'visualizer-{work_dir}'
    return BeitlabRunner.from_cfg(cfg)


def _json_log(work_dir) -> list:
    (path, ) = glob.glob(str(work_dir / '*' / 'vis_data' / '2*.json'))
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _state(path) -> dict:
    return safe_torch_load(str(path))


def test_a_nan_step_is_skipped_and_training_continues(tmp_path) -> None:
    runner = _runner(tmp_path, **{'model.nan_calls': [1]})   # NaN loss at iteration 2 of 4
    runner.train()
    (hook, ) = [h for h in runner.hooks if isinstance(h, NonFiniteGuardHook)]
    assert (hook.skipped, hook.consecutive, runner.iter) == (1, 0, 4)
    ckpt = {i: _state(tmp_path / f'iter_{i}.pth') for i in (1, 2, 3)}
    for key, value in ckpt[1]['state_dict'].items():        # iteration 2 moved nothing
        assert torch.equal(value, ckpt[2]['state_dict'][key]), key
        assert not torch.equal(value, ckpt[3]['state_dict'][key]), key
    steps = [s['step'] for s in ckpt[3]['optimizer']['state'].values()]
    assert all(int(s) == 2 for s in steps)                  # AdamW stepped on iterations 1 and 3
    log = _json_log(tmp_path)
    lines = [r for r in log if 'loss' in r]
    assert [r['nonfinite/skipped'] for r in lines] == [0, 1, 1, 1]
    assert all(math.isfinite(r['loss']) for r in lines)     # the NaN is not in the log
    assert [r['step'] for r in log if 'grad_norm/linear' in r] == [4]   # iteration 2 skipped
    for value in _state(tmp_path / 'iter_4.pth')['state_dict'].values():
        assert torch.isfinite(value).all()


def test_consecutive_nan_steps_stop_with_the_named_error(tmp_path) -> None:
    work = tmp_path / 'work'
    proc = run_tool('train.py', CONFIG, '--work-dir', work, '--cfg-options', 'model.nan_calls=[1,2]',
                    'custom_hooks=[dict(type=NonFiniteGuardHook,max_consecutive=2)]', check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    err = proc.stderr
    assert 'train.py: error: training stopped at iteration 3: 2 consecutive non-finite steps' in err
    good = work / 'iter_1.pth'                              # iter_2.pth was saved inside the run
    assert f'last good checkpoint: {good}' in err
    assert (f'python tools/train.py {CONFIG.relative_to(REPO_ROOT)} --work-dir {work} '
            f'--resume {good}') in err
    assert not (work / 'iter_3.pth').exists()


def test_rollback_reloads_the_last_good_checkpoint_and_goes_on(tmp_path) -> None:
    runner = _runner(tmp_path, **{
        'model.nan_calls': [2, 3], 'train_cfg.max_iters': 5,
        'custom_hooks': [dict(type='NonFiniteGuardHook', max_consecutive=2, rollback=True)]})
    runner.train()
    (hook, ) = [h for h in runner.hooks if isinstance(h, NonFiniteGuardHook)]
    assert (hook.rollbacks, hook.skipped, runner.iter) == (1, 2, 5)
    assert hook.last_good_ckpt == str(tmp_path / 'iter_5.pth')
    model = runner.model
    assert model.calls == 7                                  # 5 iterations + the 2 rolled back
    log = [r['step'] for r in _json_log(tmp_path) if 'loss' in r]
    assert log == [1, 2, 3, 4, 3, 4, 5]                      # iterations 3, 4 ran twice
    final = _state(tmp_path / 'iter_5.pth')
    # AdamW steps: 2 before the rollback point, then iterations 3, 4, 5 (skip-only would be 3)
    assert all(int(s['step']) == 5 for s in final['optimizer']['state'].values())
    for value in final['state_dict'].values():
        assert torch.isfinite(value).all()

