"""The shipped Fashion-MNIST subset reads through the loader of the full files; the data
location comes from BEITLAB_FASHION_MNIST_ROOT; the subset tool reproduces its input."""

import numpy as np
import pytest

from beitlab.datasets import fashion_mnist_files as fm
from tests.tools.fashion_mnist_synthetic import make_fashion_mnist_src
from tests.tools_helpers import FASHION_MNIST_SUBSET, run_tool


def test_shipped_subset_reads_like_the_full_files() -> None:
    for split, num in (('train', 500), ('test', 250)):
        images, labels = fm.load_fashion_mnist(str(FASHION_MNIST_SUBSET), split)
        assert images.shape == (num, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (num,) and labels.dtype == np.int64
        # real photographs of clothing: every class present, dark background, bright items
        assert set(labels.tolist()) == set(range(10))
        assert images[:, 0, 0].mean() < 10 and images.max() == 255
        assert len({img.tobytes() for img in images}) == num


def test_data_root_comes_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(fm.FASHION_MNIST_ROOT_ENV, raising=False)
    assert fm.default_fashion_mnist_root() == fm.DEFAULT_FASHION_MNIST_ROOT
    monkeypatch.setenv(fm.FASHION_MNIST_ROOT_ENV, str(FASHION_MNIST_SUBSET))
    images, _ = fm.load_fashion_mnist(split='val')
    assert len(images) == 250
    monkeypatch.setenv(fm.FASHION_MNIST_ROOT_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f'{fm.FASHION_MNIST_ROOT_ENV}'):
        fm.load_fashion_mnist()


def test_subset_tool_writes_the_first_images_in_the_official_format(tmp_path) -> None:
    images, labels = make_fashion_mnist_src(tmp_path / 'full', num_train=12, num_val=8)
    out = tmp_path / 'subset'
    run_tool('dataset_converters/fashion_mnist_subset.py', '--src', tmp_path / 'full',
             '--out', out, '--num-train', 5, '--num-test', 3)
    for split, num in (('train', 5), ('val', 3)):
        got_images, got_labels = fm.load_fashion_mnist(str(out), split)
        np.testing.assert_array_equal(got_images, images[split][:num])
        np.testing.assert_array_equal(got_labels, labels[split][:num])
    first = (out / 'train-images-idx3-ubyte.gz').read_bytes()
    run_tool('dataset_converters/fashion_mnist_subset.py', '--src', tmp_path / 'full',
             '--out', out, '--num-train', 5, '--num-test', 3, '--force')
    assert (out / 'train-images-idx3-ubyte.gz').read_bytes() == first  # same bytes again


def test_subset_tool_refuses_to_write_over_its_source(tmp_path) -> None:
    make_fashion_mnist_src(tmp_path / 'full')
    before = (tmp_path / 'full' / 'train-images-idx3-ubyte.gz').read_bytes()
    proc = run_tool('dataset_converters/fashion_mnist_subset.py', '--src', tmp_path / 'full',
                    '--out', tmp_path / 'full', check=False)
    assert proc.returncode != 0 and 'not overwritten' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert (tmp_path / 'full' / 'train-images-idx3-ubyte.gz').read_bytes() == before
