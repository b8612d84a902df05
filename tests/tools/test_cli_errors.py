"""User errors on the real tools: one ``<tool>: error:`` line naming the value and what was
expected (plus hint lines where there are ways forward), exit status != 0, no traceback;
``--debug`` and ``BEITLAB_DEBUG=1`` bring the traceback back.

Every tool runs as a user runs it, ``python tools/<tool> ...`` in a fresh interpreter, with
``BEITLAB_DEBUG`` removed from the environment. Nothing trains: each case stops while the
runner is set up (building a ViT-B is the slowest step).
"""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest
import torch

from tests.tools_helpers import REPO_ROOT

TINY = 'configs/beit/mim_vit-tiny_1xb8-2it_tiny.py'   # as written: tests/data/tiny_images


class _NotAWeight:
    """Pickled by reference into a checkpoint: weights_only loading must refuse it."""

    def __init__(self) -> None:
        self.note = 'not a tensor'


def run(tool: str, *args, cwd: Path = REPO_ROOT, env: Optional[Dict[str, str]] = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    """``python tools/<tool> args`` from ``cwd``; the tool and its imports come from this
    checkout whatever ``cwd`` is."""
    full_env = {k: v for k, v in os.environ.items() if k != 'BEITLAB_DEBUG'}
    full_env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO_ROOT), full_env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    full_env.setdefault('OMP_NUM_THREADS', '1')
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(REPO_ROOT / 'tools' / tool), *map(str, args)],
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def error_line(proc: subprocess.CompletedProcess, tool: str) -> str:
    """The one ``error:`` line of a failed run, after checking the exit status and that no
    traceback was printed; the assertion messages show the end of stderr."""
    tail = proc.stderr[-3000:]
    assert proc.returncode != 0, f'{tool} succeeded:\n{tail}'
    assert 'Traceback' not in proc.stderr, tail
    errors = [line for line in proc.stderr.splitlines() if 'error:' in line]
    assert len(errors) == 1 and errors[0].startswith(f'{Path(tool).name}: error: '), tail
    return errors[0]


def test_missing_dalle_weights_give_the_three_ways_forward(tmp_path):
    # The default config, as written: its tokenizer checkpoint is the relative path
    # checkpoints/dalle_encoder.pth, read from the current directory. Running from an empty
    # tmp_path makes sure that file does not exist, so a real checkpoints/ folder in the
    # repository can neither start a training run nor change the message under test;
    # the config is given by its absolute path (its _base_ files resolve next to it).
    config = REPO_ROOT / 'configs/beit/mim_vit-b.py'
    proc = run('train.py', config, '--work-dir', tmp_path / 'work', cwd=tmp_path)
    line = error_line(proc, 'train.py')
    assert "'checkpoints/dalle_encoder.pth'" in line and 'model.target_generator.checkpoint' in line
    assert str(tmp_path) in line   # where the relative path was looked for
    hints = proc.stderr[proc.stderr.index(line):]
    # (1) convert OpenAI's encoder, (2) beitlab's own dVAE, (3) random weights
    assert ('python tools/model_converters/dalle_to_beitlab.py dalle_encoder_sd.pth '
            'checkpoints/dalle_encoder.pth') in hints
    assert 'python tools/train.py configs/dvae/dvae_8192-112px_imagenet.py' in hints
    assert ('python tools/model_converters/extract_tokenizer.py '
            'work_dirs/dvae_8192-112px_imagenet/iter_200000.pth '
            'checkpoints/dvae_8192-112px_imagenet.pth '
            '--config configs/dvae/dvae_8192-112px_imagenet.py') in hints
    assert 'python tools/train.py configs/beit/mim_vit-b_dvae-8192.py' in hints
    assert '--cfg-options model.target_generator.checkpoint=None' in hints
    # every path the hints name exists in the repository
    for path in ('tools/model_converters/dalle_to_beitlab.py', 'configs/dvae/dvae_8192-112px_imagenet.py',
                 'tools/model_converters/extract_tokenizer.py', 'configs/beit/mim_vit-b_dvae-8192.py'):
        assert (REPO_ROOT / path).is_file(), path


def test_missing_dvae_weights_say_how_to_train_them(tmp_path):
    missing = tmp_path / 'missing' / 'dvae_fashion-mnist.pth'
    proc = run('train.py', 'configs/beit/beit_vit-fmnist_fashion-mnist.py', '--work-dir',
               tmp_path / 'work', '--cfg-options', f'model.target_generator.checkpoint={missing}')
    line = error_line(proc, 'train.py')
    assert f"'{missing}'" in line and 'DVAE' in line
    hints = proc.stderr[proc.stderr.index(line):]
    assert 'python tools/train.py configs/dvae/dvae_fashion-mnist.py' in hints
    assert 'tools/model_converters/extract_tokenizer.py work_dirs/dvae_fashion-mnist/' in hints
    assert 'DALL-E' not in hints


def test_missing_data_root_names_the_folder_and_the_option(tmp_path):
    nope = tmp_path / 'nope'
    proc = run('train.py', TINY, '--work-dir', tmp_path / 'work',
               '--cfg-options', f'train_dataloader.dataset.data_root={nope}')
    line = error_line(proc, 'train.py')
    assert f"'{nope}' does not exist" in line and 'train/<class>/<image>' in line
    assert '--cfg-options train_dataloader.dataset.data_root=' in proc.stderr


def test_unknown_type_names_the_closest_registered_name(tmp_path):
    proc = run('train.py', TINY, '--work-dir', tmp_path / 'work',
               '--cfg-options', 'model.type=BEiTT')
    line = error_line(proc, 'train.py')
    assert "model.type = 'BEiTT'" in line and 'closest registered names: BEiT' in line


@pytest.fixture()
def refused_checkpoint(tmp_path) -> Path:
    path = tmp_path / 'custom_object.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'meta': _NotAWeight()}, path)
    return path


def test_refused_checkpoint_as_load_from(tmp_path, refused_checkpoint):
    proc = run('train.py', TINY, '--work-dir', tmp_path / 'work',
               '--cfg-options', f'load_from={refused_checkpoint}')
    line = error_line(proc, 'train.py')
    assert f"refused to load checkpoint '{refused_checkpoint}'" in line
    assert '_NotAWeight' in line and 'weights_only=False' not in line


def test_refused_checkpoint_in_a_converter(tmp_path, refused_checkpoint):
    proc = run('model_converters/publish_mim_checkpoint.py', refused_checkpoint,
               tmp_path / 'out.pth')
    line = error_line(proc, 'model_converters/publish_mim_checkpoint.py')
    assert f"refused to load checkpoint '{refused_checkpoint}'" in line
    assert not (tmp_path / 'out.pth').exists()


def test_missing_config_file(tmp_path):
    proc = run('analysis_tools/benchmark.py', tmp_path / 'no_such_config.py')
    line = error_line(proc, 'analysis_tools/benchmark.py')
    assert f"config file '{tmp_path / 'no_such_config.py'}' does not exist" in line


def test_bad_option_is_argparse_usage_error():
    proc = run('train.py', TINY, '--no-such-option')
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert 'train.py: error: unrecognized arguments: --no-such-option' in proc.stderr


@pytest.mark.parametrize('how', ['--debug', 'BEITLAB_DEBUG=1'])
def test_debug_shows_the_traceback(tmp_path, how):
    args = [TINY, '--work-dir', tmp_path / 'work', '--cfg-options', 'model.type=BEiTT']
    if how == '--debug':
        proc = run('train.py', *args, '--debug')
    else:
        proc = run('train.py', *args, env={'BEITLAB_DEBUG': '1'})
    assert proc.returncode != 0
    assert 'Traceback (most recent call last)' in proc.stderr
    assert 'UnknownTypeError' in proc.stderr and 'BEiTT' in proc.stderr
    assert 'train.py: error:' not in proc.stderr
