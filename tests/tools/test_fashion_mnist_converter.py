"""tools/dataset_converters/fashion_mnist.py on tiny synthetic idx files."""
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from beitlab.datasets.fashion_mnist_files import read_idx
from tests.tools.fashion_mnist_synthetic import make_fashion_mnist_src

REPO = Path(__file__).resolve().parents[2]


def load_converter():
    path = REPO / 'tools' / 'dataset_converters' / 'fashion_mnist.py'
    spec = importlib.util.spec_from_file_location('fashion_mnist_converter', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_converter_writes_imagenet_layout(tmp_path, capsys):
    images, labels = make_fashion_mnist_src(tmp_path / 'src')
    converter = load_converter()
    out = tmp_path / 'out'
    converter.main(['--src', str(tmp_path / 'src'), '--out', str(out)])
    classes = (out / 'meta' / 'classes.txt').read_text().split()
    assert classes == list(converter.CLASSES) and len(classes) == 10
    for split, num in (('train', 12), ('val', 8)):
        lines = (out / 'meta' / f'{split}.txt').read_text().splitlines()
        assert len(lines) == num
        for idx, line in enumerate(lines):
            rel, label = line.split(' ')
            assert int(label) == labels[split][idx]
            assert rel == f'{classes[int(label)]}/{idx:05d}.png'
            png = np.array(Image.open(out / split / rel))
            assert png.shape == (28, 28) and np.array_equal(png, images[split][idx])
    assert "'train': 12" in capsys.readouterr().out


def test_converter_errors_name_the_file(tmp_path):
    converter = load_converter()
    with pytest.raises(FileNotFoundError, match='train-images-idx3-ubyte.gz'):
        converter.main(['--src', str(tmp_path / 'empty'), '--out', str(tmp_path / 'out')])
    bad = tmp_path / 'bad.gz'
    with gzip.open(bad, 'wb') as f:
        f.write(b'\x12\x34\x08\x01' + b'\x00' * 8)
    with pytest.raises(ValueError, match='bad.gz.*not an idx file'):
        read_idx(str(bad))
