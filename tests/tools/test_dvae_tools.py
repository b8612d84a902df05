"""Two-iteration dVAE run through tools/train.py, then tools/test.py, the checkpoint
extractor and the reconstruction-grid tool, on converted synthetic Fashion-MNIST files."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.tools.fashion_mnist_synthetic import make_fashion_mnist_src
from tests.tools_helpers import REPO_ROOT, run_tool

CONFIG = 'configs/dvae/dvae_tiny-2it_fashion-mnist.py'


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_test_extract_and_visualise(tmp_path):
    make_fashion_mnist_src(tmp_path / 'src', num_train=16, num_val=8)
    data = tmp_path / 'fashion_mnist'
    _load(REPO_ROOT / 'tools/dataset_converters/fashion_mnist.py').main(
        ['--src', str(tmp_path / 'src'), '--out', str(data)])
    roots = [f'{loader}.dataset.data_root={data}'
             for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    work = tmp_path / 'work'
    proc = run_tool('train.py', CONFIG, '--work-dir', str(work), '--cfg-options', *roots)
    log = proc.stdout + proc.stderr
    for key in ('loss_recon', 'loss_codebook', 'loss_commitment', 'psnr', 'usage',
                'perplexity', 'recon/psnr', 'recon/usage'):
        assert key in log, key
    assert (work / 'vis_reconstruction' / 'recon_iter_2.png').is_file()

    ckpt = tmp_path / 'dvae_tiny.pth'
    _load(REPO_ROOT / 'tools/model_converters/extract_tokenizer.py').main(
        [str(work / 'iter_2.pth'), str(ckpt), '--config', str(REPO_ROOT / CONFIG)])
    saved = torch.load(ckpt, weights_only=True)
    assert saved['meta']['tokenizer']['type'] == 'DVAE'
    assert all(k.startswith('tokenizer.') for k in saved['state_dict'])

    run_tool('test.py', CONFIG, str(ckpt), '--work-dir', str(tmp_path / 'test'),
             '--cfg-options', *roots)
    metrics = json.loads((tmp_path / 'test' / 'metrics.json').read_text())
    assert 0 < metrics['recon/usage'] <= 1 and 1 <= metrics['recon/perplexity'] <= 16
    assert 0 < metrics['recon/mse'] < 1 and metrics['recon/psnr'] > 0

    png = tmp_path / 'grid.png'
    _load(REPO_ROOT / 'tools/visualization/vis_reconstruction.py').main(
        [str(REPO_ROOT / CONFIG), str(ckpt), '--out', str(png), '--num-images', '4',
         '--ncols', '2', '--cfg-options', *roots])
    grid = np.array(Image.open(png))
    assert grid.shape == (2 * 34 + 2, 2 * 66 + 2, 3)
