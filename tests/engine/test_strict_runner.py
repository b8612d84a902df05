"""tools/train.py and tools/test.py load strictly (BeitlabRunner): ``load_from`` of a checkpoint
with a wrong shape, a missing or an unexpected key stops before the first iteration with one
table; ``load_from_allow`` in the config lets exactly the named differences through; a
``--resume`` into another model width stops before the first step naming the parameters."""
import pytest
import torch

from tests.tools_helpers import run_tool

TOY = 'tests/data/configs/toy_regression.py'
TINY_MIM = 'configs/beit/mim_vit-tiny_1xb8-2it_tiny.py'


def _toy_checkpoint(path, **changes) -> None:
    """A ToyRegressor (``linear: Linear(4, 1)``) checkpoint with ``changes`` applied:
    a tensor replaces an entry, ``None`` removes it."""
    state = {'linear.weight': torch.full((1, 4), 0.5), 'linear.bias': torch.full((1, ), 0.25)}
    for key, value in changes.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    torch.save({'state_dict': state, 'meta': {}}, path)


def _error_block(stderr: str) -> list:
    """The ``train.py: error:`` line and the lines under it, stripped."""
    lines = [line.strip() for line in stderr.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith('train.py: error:'))
    return lines[start:]


CASES = {
    'shape': (dict(**{'linear.weight': torch.zeros(1, 5)}),
              'shape | linear.weight | [1, 5] | [1, 4]', "shape_mismatch=['linear.weight']"),
    'missing': (dict(**{'linear.bias': None}), 'missing | linear.bias | - | [1]',
                "missing=['linear.bias']"),
    'unexpected': (dict(**{'extra.weight': torch.zeros(3)}), 'unexpected | extra.weight | [3] | -',
                   "unexpected=['extra.weight']"),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_load_from_that_does_not_fit_stops_before_training(tmp_path, case) -> None:
    changes, row, allowance = CASES[case]
    ckpt = tmp_path / 'ckpt.pth'
    _toy_checkpoint(ckpt, **changes)
    proc = run_tool('train.py', TOY, '--work-dir', tmp_path / 'w', '--cfg-options',
                    f'load_from={ckpt}', check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    block = _error_block(proc.stderr)
    what = dict(shape='shape mismatch', missing='missing key', unexpected='unexpected key')[case]
    assert block[0] == f"train.py: error: checkpoint '{ckpt}' does not fit ToyRegressor: 1 {what}"
    assert block[1] == 'difference | key | checkpoint | model'
    assert block[2] == row
    assert allowance in block[3] and 'load_from_allow = dict(' in block[3]
    assert 'Iter(train)' not in proc.stdout + proc.stderr
    assert not (tmp_path / 'w' / 'iter_1.pth').exists()

    # the same checkpoint with the difference allowed in the config trains
    key = allowance.split('=')[0]
    pattern = allowance.split("'")[1]
    proc = run_tool('train.py', TOY, '--work-dir', tmp_path / 'w2', '--cfg-options',
                    f'load_from={ckpt}', f'load_from_allow.{key}=[{pattern}]')
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [2/2]' in log and 'allowed differences loading into ToyRegressor' in log


def test_matching_load_from_trains_and_a_typo_in_the_allowance_is_an_error(tmp_path) -> None:
    ckpt = tmp_path / 'ckpt.pth'
    _toy_checkpoint(ckpt)
    proc = run_tool('train.py', TOY, '--work-dir', tmp_path / 'w', '--cfg-options',
                    f'load_from={ckpt}')
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [2/2]' in log and '(strict)' in log
    proc = run_tool('train.py', TOY, '--work-dir', tmp_path / 'w3', '--cfg-options',
                    f'load_from={ckpt}', 'load_from_allow.unexpcted=[x]', check=False)
    assert proc.returncode == 1
    assert "load_from_allow has unknown keys ['unexpcted']" in proc.stderr
    assert 'Iter(train)' not in proc.stdout + proc.stderr


def test_test_tool_refuses_a_checkpoint_that_does_not_fit(tmp_path) -> None:
    from mmengine.config import Config

    from beitlab.registry import MODELS
    from beitlab.utils import register_all_modules
    register_all_modules()
    config = 'configs/beit_finetune/beit_vit-b-p16_8xb128-lrd0.65-100e_in1k_tiny.py'
    state = MODELS.build(Config.fromfile(config).model).state_dict()
    state['head.fc.weight'] = torch.zeros(7, 64)  # 7 classes, the config has 10
    ckpt = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': state, 'meta': {}}, ckpt)
    proc = run_tool('test.py', config, ckpt, '--work-dir', tmp_path / 't', '--cfg-options',
                    'test_dataloader.dataset.data_root=tests/data/tiny_images',
                    'test_dataloader.dataset.data_prefix.img_path=train', check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert (f"test.py: error: checkpoint '{ckpt}' does not fit ImageClassifier: 1 shape mismatch"
            in proc.stderr)
    assert 'shape | head.fc.weight | [7, 64] | [10, 64]' in proc.stderr
    assert not (tmp_path / 't' / 'metrics.json').exists()


def test_resume_into_another_width_stops_before_the_first_step(tmp_path) -> None:
    work = tmp_path / 'w'
    run_tool('train.py', TINY_MIM, '--work-dir', work, '--cfg-options', 'train_cfg.max_iters=1')
    ckpt = work / 'iter_1.pth'
    assert ckpt.exists()
    proc = run_tool('train.py', TINY_MIM, '--work-dir', tmp_path / 'w2', '--resume', ckpt,
                    '--cfg-options', 'model.backbone.arch.embed_dims=32', 'model.head.in_channels=32',
                    check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    block = _error_block(proc.stderr)
    assert f"checkpoint '{ckpt}' does not fit BEiT:" in block[0] and 'shape mismatch' in block[0]
    assert 'shape | backbone.cls_token | [1, 1, 64] | [1, 1, 32]' in block
    assert any(line.startswith('... and ') for line in block)
    assert any('--resume continues a run' in line for line in block)
    assert 'Iter(train)' not in proc.stdout + proc.stderr

    # with the model's differences allowed, the optimizer state is what does not fit: named
    # per parameter before the first step (AdamW would otherwise fail inside its update)
    proc = run_tool('train.py', TINY_MIM, '--work-dir', tmp_path / 'w3', '--resume', ckpt,
                    '--cfg-options', 'model.backbone.arch.embed_dims=32', 'model.head.in_channels=32',
                    'load_from_allow.shape_mismatch=[*]', check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    block = _error_block(proc.stderr)
    assert f"the optimizer state in '{ckpt}' does not fit the optimizer of this run" in block[0]
    assert 'optimizer state | backbone.cls_token (exp_avg) | [1, 1, 64] | [1, 1, 32]' in block
    assert 'Iter(train)' not in proc.stdout + proc.stderr
