"""tools/analysis_tools/frozen_features.py: the padded inputs, the linear probe, strict
loading of the backbone and the report, on the shipped Fashion-MNIST subset."""
import importlib.util
import json

import pytest
import torch
from mmengine.config import Config

from beitlab.datasets.fashion_mnist_files import load_fashion_mnist
from beitlab.evaluation.frozen_features import build_backbone, fashion_mnist_inputs, linear_probe
from beitlab.utils import register_all_modules
from tests.tools_helpers import FASHION_MNIST_SUBSET, REPO_ROOT

_spec = importlib.util.spec_from_file_location(
    'frozen_features', REPO_ROOT / 'tools' / 'analysis_tools' / 'frozen_features.py')
frozen_features = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(frozen_features)

CONFIG = str(REPO_ROOT / 'configs' / 'beit' / 'beit_vit-fmnist_fashion-mnist.py')


def test_inputs_are_the_items_padded_at_the_top_left_and_normalised() -> None:
    x, y = fashion_mnist_inputs(str(FASHION_MNIST_SUBSET), 'test', [10.] * 3,
                                                [2.] * 3, num=7)
    images, labels = load_fashion_mnist(str(FASHION_MNIST_SUBSET), 'test')
    assert x.shape == (7, 3, 32, 32) and torch.equal(y, torch.from_numpy(labels[:7].copy()))
    expected = (torch.from_numpy(images[:7].copy()).float() - 10.) / 2.
    for c in range(3):
        assert torch.equal(x[:, c, :28, :28], expected)
    assert torch.all(x[:, :, 28:, :] == -5.) and torch.all(x[:, :, :, 28:] == -5.)


def test_linear_probe_separates_separable_features_and_not_random_labels() -> None:
    g = torch.Generator().manual_seed(0)
    centres = 4 * torch.randn(5, 16, generator=g)
    labels = torch.randint(0, 5, (2000,), generator=g)
    feats = centres[labels] + torch.randn(2000, 16, generator=g)
    acc = linear_probe(feats[:1500], labels[:1500], feats[1500:], labels[1500:],
                                       epochs=20, seed=0)
    assert acc > 0.95
    shuffled = labels[torch.randperm(2000, generator=g)]
    chance = linear_probe(feats[:1500], shuffled[:1500], feats[1500:],
                                          shuffled[1500:], epochs=20, seed=0)
    assert chance < 0.35


def test_report_for_random_init_and_a_trained_checkpoint(tmp_path, capsys) -> None:
    out = tmp_path / 'frozen.json'
    args = ['--fashion-mnist-root', str(FASHION_MNIST_SUBSET), '--layers', '2', '-1',
            '--num-train', '200', '--probe-epochs', '2', '--batch-size', '100']
    res = frozen_features.main([CONFIG, 'none', *args, '--out', str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    assert [(r['layer'], r['pooling']) for r in res['rows']] == \
        [(3, 'cls'), (3, 'mean'), (6, 'cls'), (6, 'mean')]
    assert res['num_train'] == 200 and res['num_test'] == 250
    assert all(0 <= r['knn_top1'] <= 100 and 0 <= r['linear_top1'] <= 100 for r in res['rows'])
    assert 'best linear probe' in capsys.readouterr().out
    with pytest.raises(FileExistsError):
        frozen_features.main([CONFIG, 'none', *args, '--out', str(out)])

    # a checkpoint of this backbone loads and changes the features; one of another shape is
    # refused by the strict loader, naming the differing tensors
    register_all_modules()
    backbone = build_backbone(Config.fromfile(CONFIG), 'none', 1)
    ckpt = tmp_path / 'backbone.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in backbone.state_dict().items()}}, ckpt)
    other = frozen_features.main([CONFIG, str(ckpt), *args])
    assert other['rows'] != res['rows']
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['backbone.cls_token'] = torch.zeros(1, 1, 8)
    torch.save({'state_dict': state}, tmp_path / 'wrong.pth')
    with pytest.raises(Exception, match='cls_token'):
        frozen_features.main([CONFIG, str(tmp_path / 'wrong.pth'), *args])


def test_extracted_features_do_not_keep_the_token_tensors_alive(monkeypatch) -> None:
    """A CLS feature is a view of its layer's [B, T, D] tokens; kept as it is, 70,000 images
    x 6 layers held 21 GB of tokens. The tokens of a batch must be freed once its features
    are stored (checked two batches later: the loop variable holds the latest batch)."""
    import weakref

    from beitlab.apis import features
    from beitlab.evaluation.frozen_features import extract
    refs = []
    real = features.layer_tokens

    def spy(backbone, x, layers):
        if len(refs) >= 2:
            assert all(r() is None for r in refs[-2]), 'tokens of an earlier batch are alive'
        out = real(backbone, x, layers)
        refs.append([weakref.ref(t) for t in out])
        return out

    monkeypatch.setattr(features, 'layer_tokens', spy)
    register_all_modules()
    backbone = build_backbone(Config.fromfile(CONFIG), 'none', 0)
    feats = extract(backbone, torch.randn(8, 3, 32, 32), [2, 5], ['cls', 'mean'], batch_size=2)
    assert len(refs) == 4
    assert all(f.shape == (8, 192) for f in feats.values())
