"""Every tool that writes a checkpoint or a dataset refuses to overwrite an existing output
without ``--force`` and refuses, even with ``--force``, an output that is its own input."""
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

from tests.tools.test_beit_converters import official_state_dict
from tests.tools_helpers import REPO_ROOT, run_tool

MODEL_CONVERTERS = {  # tool -> argv before src, dst
    'publish_mim_checkpoint': [],
    'extract_tokenizer': [],
    'dalle_to_beitlab': [],
    'beit_official_to_beitlab': [],
    'beitlab_to_beit_official': [],
    'beit_classifier_official': ['to-beitlab'],
    'convert': ['--from', 'official', '--to', 'beitlab'],
}
DATASET_CONVERTERS = ('fashion_mnist', 'fashion_mnist_scenes_seg', 'fashion_mnist_scenes_coco',
                      'fashion_mnist_subset')


def load_tool(folder: str, name: str):
    spec = importlib.util.spec_from_file_location(f'{name}_tool', REPO_ROOT / 'tools' / folder /
                                                  f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call(folder: str, name: str, argv: list, monkeypatch):
    """``main(argv)``; tools whose ``main`` reads ``sys.argv`` get it there."""
    module = load_tool(folder, name)
    if module.main.__code__.co_argcount == 0:
        monkeypatch.setattr(sys, 'argv', [name] + argv)
        return module.main()
    return module.main(argv)


@pytest.mark.parametrize('name', sorted(MODEL_CONVERTERS))
def test_model_converter_refuses_its_input_and_an_existing_output(name, tmp_path, monkeypatch):
    src = tmp_path / 'src.pth'
    torch.save({'state_dict': {'backbone.cls_token': torch.ones(1, 1, 4)}}, src)
    before = src.read_bytes()
    os.link(src, tmp_path / 'hard.pth')
    (tmp_path / 'link.pth').symlink_to(src)
    prefix = MODEL_CONVERTERS[name]
    for dst in ('src.pth', 'hard.pth', 'link.pth'):
        for force in ([], ['--force']):
            with pytest.raises(ValueError, match=f"output '.*{dst}' is the input '.*src.pth'"):
                call('model_converters', name, prefix + [str(src), str(tmp_path / dst)] + force,
                     monkeypatch)
    assert src.read_bytes() == before
    existing = tmp_path / 'existing.pth'
    existing.write_bytes(b'keep me')
    with pytest.raises(FileExistsError, match="existing.pth' exists; pass --force"):
        call('model_converters', name, prefix + [str(src), str(existing)], monkeypatch)
    assert existing.read_bytes() == b'keep me'


@pytest.mark.parametrize('name', DATASET_CONVERTERS)
def test_dataset_converter_refuses_its_source_and_a_non_empty_output(name, tmp_path, monkeypatch):
    src = tmp_path / 'raw'
    src.mkdir()
    (src / 'train-images-idx3-ubyte.gz').write_bytes(b'raw data')
    for force in ([], ['--force']):
        with pytest.raises(ValueError, match='is the input|not overwritten'):
            call('dataset_converters', name, ['--src', str(src), '--out', str(src)] + force,
                 monkeypatch)
    assert sorted(os.listdir(src)) == ['train-images-idx3-ubyte.gz']
    assert (src / 'train-images-idx3-ubyte.gz').read_bytes() == b'raw data'
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'mine.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match="out' exists and is not empty; pass --force"):
        call('dataset_converters', name, ['--src', str(src), '--out', str(out)], monkeypatch)
    assert os.listdir(out) == ['mine.txt']


def test_publish_half_safetensors_keeps_names_and_loads_back(tmp_path) -> None:
    from beitlab.checkpoint import load_checkpoint_file
    tool = load_tool('model_converters', 'publish_mim_checkpoint')
    src, dst = tmp_path / 'iter_5.pth', tmp_path / 'zoo.safetensors'
    weight = torch.randn(3, 4)
    torch.save({'state_dict': {'backbone.w': weight, 'backbone.index': torch.arange(3),
                               'head.b': torch.ones(2)}, 'meta': {'iter': 5}}, src)
    tool.main([str(src), str(dst), '--half'])
    out = load_checkpoint_file(dst)
    state = out['state_dict']
    assert sorted(state) == ['backbone.index', 'backbone.w', 'head.b']
    assert state['backbone.w'].dtype == torch.float16 and state['backbone.index'].dtype == torch.int64
    assert torch.equal(state['backbone.w'], weight.half())
    # the file records where it came from by name only (no folder of this machine)
    assert out['meta'] == {'source': 'iter_5.pth', 'iter': 5}


def test_publish_force_replaces_and_the_cli_error_is_one_line(tmp_path) -> None:
    tool = load_tool('model_converters', 'publish_mim_checkpoint')
    src, dst = tmp_path / 'iter_2.pth', tmp_path / 'published.pth'
    torch.save({'state_dict': {'backbone.w': torch.ones(2), 'head.fc.b': torch.zeros(1),
                               'target_generator.t': torch.zeros(1)}, 'meta': {'iter': 2}}, src)
    dst.write_bytes(b'an older export')
    tool.main([str(src), str(dst), '--force'])
    out = torch.load(dst, weights_only=True)
    assert sorted(out['state_dict']) == ['backbone.w', 'head.fc.b'] and out['meta']['iter'] == 2
    assert sorted(os.listdir(tmp_path)) == ['iter_2.pth', 'published.pth']  # no temp file left

    # as a user runs it: dst == src is one error line, exit 1, and the checkpoint is intact
    before = src.read_bytes()
    proc = run_tool('model_converters/publish_mim_checkpoint.py', src, src, '--force', check=False,
                    timeout=120)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if 'error:' in line]
    assert len(errors) == 1 and f"output '{src}' is the input '{src}'" in errors[0]
    assert src.read_bytes() == before


def test_official_converters_force_round_trip(tmp_path) -> None:
    src, mid, back = tmp_path / 'official.pth', tmp_path / 'beitlab.pth', tmp_path / 'back.pth'
    official = official_state_dict()
    torch.save({'model': official}, src)
    convert = load_tool('model_converters', 'convert')
    to_official = [str(mid), str(back), '--from', 'beitlab', '--to', 'official']
    assert convert.main([str(src), str(mid), '--from', 'official', '--to', 'beitlab']) == 0
    assert convert.main(to_official) == 0
    back.write_bytes(b'stale')
    with pytest.raises(FileExistsError):
        convert.main(to_official)
    assert back.read_bytes() == b'stale'
    assert convert.main(to_official + ['--force']) == 0
    exported = torch.load(back, weights_only=True)['model']
    assert sorted(exported) == sorted(official)
    meta = torch.load(mid, weights_only=True)['meta']
    assert meta['source_file'] == str(src) and meta['vocab_size'] == 50
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ['back.pth', 'beitlab.pth',
                                                               'official.pth']
