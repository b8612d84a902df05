"""beitlab.apis: init_model (layouts, strictness), extract_features, classify, mim_predict, tools/infer.py."""
import copy
import glob

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope
from PIL import Image

from beitlab.apis import classify, extract_features, init_model, mim_predict
from beitlab.datasets.fashion_mnist_files import load_fashion_mnist
from beitlab.utils.strict_load import StrictLoadError
from beitlab.visualization.mim_figure import eval_pipeline
from tests.tools_helpers import FASHION_MNIST_SUBSET, REPO_ROOT, run_tool

FMNIST_CLS = str(REPO_ROOT / 'configs/beit_finetune/beit_vit-fmnist_finetune-lrd0.65_fashion-mnist_tiny.py')
TINY_CLS = str(REPO_ROOT / 'tests/data/configs/classifier_tiny_images.py')
TINY_MIM = str(REPO_ROOT / 'configs/beit/mim_vit-tiny_1xb8-2it_tiny.py')
IMAGES = sorted(glob.glob(str(REPO_ROOT / 'tests/data/tiny_images/train/*/*.png')))


def _perturbed_checkpoint(config: str, path, seed: int = 0, **extra) -> dict:
    """Save the config's model with random weights (all of them away from their init)."""
    model = init_model(config)
    gen = torch.Generator().manual_seed(seed)
    state = {k: v + 0.05 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    torch.save(dict(state_dict=state, **extra), path)
    return state


def test_init_model_layouts_and_strictness(tmp_path) -> None:
    state = _perturbed_checkpoint(FMNIST_CLS, tmp_path / 'ckpt.pth')
    model = init_model(FMNIST_CLS, str(tmp_path / 'ckpt.pth'))
    assert not model.training and model.cfg.filename == FMNIST_CLS
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    # official ({'model': ...}: bare backbone names, head.*) and plain layouts load the same
    official = {(k[len('backbone.'):] if k.startswith('backbone.') else 'head.' + k[len('head.fc.'):]): v
                for k, v in state.items()}
    torch.save({'model': official}, tmp_path / 'official.pth')
    torch.save(state, tmp_path / 'plain.pth')
    for name in ('official.pth', 'plain.pth'):
        other = init_model(FMNIST_CLS, str(tmp_path / name))
        for key, value in other.state_dict().items():
            assert torch.equal(value, state[key]), (name, key)
    # an official pre-training file: bare backbone names and lm_head.*
    mim = _perturbed_checkpoint(TINY_MIM, tmp_path / 'mim.pth')
    torch.save({'model': {(k[len('backbone.'):] if k.startswith('backbone.') else
                           'lm_head.' + k[len('head.fc.'):]): v for k, v in mim.items()}},
               tmp_path / 'mim_official.pth')
    for key, value in init_model(TINY_MIM, str(tmp_path / 'mim_official.pth')).state_dict().items():
        assert torch.equal(value, mim[key]), key
    # a missing and an unexpected key: an error that lists both
    broken = dict(state)
    del broken['backbone.blocks.1.mlp.fc1.weight']
    broken['head.extra'] = torch.zeros(1)
    torch.save(dict(state_dict=broken), tmp_path / 'broken.pth')
    with pytest.raises(StrictLoadError) as err:
        init_model(FMNIST_CLS, str(tmp_path / 'broken.pth'))
    assert 'backbone.blocks.1.mlp.fc1.weight' in str(err.value) and 'head.extra' in str(err.value)


def test_extract_features_equals_the_backbone_on_the_test_pipeline(tmp_path) -> None:
    _perturbed_checkpoint(FMNIST_CLS, tmp_path / 'ckpt.pth')
    model = init_model(FMNIST_CLS, str(tmp_path / 'ckpt.pth'))
    images, _ = load_fashion_mnist(str(FASHION_MNIST_SUBSET), 'val')
    items = [images[i] for i in range(5)]                      # [28, 28] uint8
    # the test pipeline by hand: pad 28 -> 32 px with zeros (bottom, right), 3 channels,
    # (x - 72.94) / 90.02
    x = torch.zeros(5, 3, 32, 32)
    x[:, :, :28, :28] = torch.from_numpy(np.stack(items)).float()[:, None]
    x = (x - 72.94) / 90.02
    # the backbone's layers by hand, through its public parts (per-layer relative bias,
    # no final norm with avg_featmap); the last layer + fc_norm is the backbone's own output
    bb = model.backbone
    with torch.no_grad():
        t, grid = bb.embed(x)
        tokens = [bb.blocks[0](t, grid, None)]
        tokens.append(bb.blocks[1](tokens[0], grid, None))    # 2 x [5, 1+64, 64]
        own = bb(x)[-1]
    torch.testing.assert_close(own, bb.fc_norm(tokens[1][:, 1:].mean(1)), rtol=0, atol=1e-5)
    cls0, mean1 = (extract_features(model, items, layers=(0, ), pooling='cls')[0],
                   extract_features(model, items, layers=(-1, ), pooling='mean', batch_size=2)[0])
    torch.testing.assert_close(cls0, tokens[0][:, 0], rtol=0, atol=1e-5)
    torch.testing.assert_close(mean1, tokens[1][:, 1:].mean(1), rtol=0, atol=1e-5)
    none = extract_features(model, items[:2], layers=(0, 1), pooling='none')
    torch.testing.assert_close(none[1], tokens[1][:2], rtol=0, atol=1e-5)
    # the model's own forward (avg_featmap + fc_norm) is left as it was
    assert (model.backbone.out_type, model.backbone.out_indices) == ('avg_featmap', [1])
    # a PNG path, a numpy RGB array and a PIL image of it give the same features
    png = tmp_path / 'item.png'
    cv2.imwrite(str(png), items[0])
    rgb = np.repeat(items[0][..., None], 3, axis=2)
    feats = [extract_features(model, [img], layers=(0, ))[0]
             for img in (str(png), rgb, Image.fromarray(rgb))]
    for f in feats:
        torch.testing.assert_close(f[0], cls0[0], rtol=0, atol=1e-5)


def test_classify_returns_topk_labels_scores_and_names(tmp_path) -> None:
    _perturbed_checkpoint(TINY_CLS, tmp_path / 'ckpt.pth')
    model = init_model(TINY_CLS, str(tmp_path / 'ckpt.pth'))
    result = classify(model, IMAGES, topk=2)
    assert result.labels.shape == result.scores.shape == (len(IMAGES), 2)
    assert result.class_names == [[('objects', 'people_and_animals')[i] for i in row]
                                  for row in result.labels.tolist()]
    # the scores are the softmax of the classifier's logits on the test pipeline
    with DefaultScope.overwrite_default_scope('beitlab'):
        pipeline = Compose(copy.deepcopy(model.cfg.test_dataloader.dataset.pipeline))
    data = model.data_preprocessor(pseudo_collate([pipeline(dict(img_path=p)) for p in IMAGES]))
    with torch.no_grad():
        probs = F.softmax(model(data['inputs'], mode='tensor'), dim=1)
    expected, labels = probs.topk(2, dim=1)
    torch.testing.assert_close(result.scores, expected)
    assert torch.equal(result.labels, labels)
    assert not torch.allclose(probs[:, 0], probs[:, 1])
    # names from the checkpoint's dataset_meta come first
    _perturbed_checkpoint(TINY_CLS, tmp_path / 'meta.pth',
                          meta=dict(dataset_meta=dict(classes=('thing', 'being'))))
    named = classify(init_model(TINY_CLS, str(tmp_path / 'meta.pth')), IMAGES[:1], topk=1)
    assert named.class_names[0][0] in ('thing', 'being')
    with pytest.raises(ValueError, match='topk=3'):
        classify(model, IMAGES[:1], topk=3)


def test_mim_predict_equals_the_tensor_mode_at_the_masked_positions(tmp_path) -> None:
    _perturbed_checkpoint(TINY_MIM, tmp_path / 'ckpt.pth')
    model = init_model(TINY_MIM, str(tmp_path / 'ckpt.pth'))
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(3, 8, 8, generator=gen) < 0.4
    pred = mim_predict(model, IMAGES[:3], mask=mask, batch_size=2)
    assert torch.equal(pred.mask, mask)
    # the deterministic training pipeline, then the tensor mode with the same masks
    with DefaultScope.overwrite_default_scope('beitlab'):
        pipeline = Compose(eval_pipeline(model.cfg.train_dataloader.dataset.pipeline))
    batch = pseudo_collate([pipeline(dict(img_path=p)) for p in IMAGES[:3]])
    data = model.data_preprocessor(batch)
    for sample, m in zip(data['data_samples'], mask):
        sample.mask = m
    with torch.no_grad():
        logits = model(data['inputs'], data['data_samples'], mode='tensor')   # [3, 64, V]
        target = model.target_generator(data['inputs'][1], patch_grid=(8, 8))
    flat = mask.flatten(1)
    torch.testing.assert_close(pred.logits, logits[flat], rtol=0, atol=1e-5)
    assert torch.equal(pred.pred_tokens, logits[flat].argmax(-1))
    assert torch.equal(pred.target_tokens, target[flat])
    # without a mask, the config's generator draws one per image
    np.random.seed(0)
    drawn = mim_predict(model, IMAGES[:2])
    assert drawn.mask.shape == (2, 8, 8) and drawn.logits.shape[0] == int(drawn.mask.sum()) > 0


def test_infer_tool_prints_topk_and_writes_features(tmp_path) -> None:
    ckpt = tmp_path / 'ckpt.pth'
    _perturbed_checkpoint(TINY_CLS, ckpt)
    proc = run_tool('infer.py', TINY_CLS, ckpt, IMAGES[0], IMAGES[-1], '--topk', '2')
    lines = [line for line in proc.stdout.splitlines() if line.startswith(str(REPO_ROOT))]
    assert len(lines) == 2 and all('objects' in line and 'people_and_animals' in line
                                   for line in lines)
    out = tmp_path / 'feats.npy'
    folder = str(REPO_ROOT / 'tests/data/tiny_images/train')
    run_tool('infer.py', TINY_CLS, ckpt, folder, '--features', out, '--layers', '0', '-1',
             '--pooling', 'mean')
    feats = np.load(out)
    assert feats.shape == (2, len(IMAGES), 64)
    expected = extract_features(init_model(TINY_CLS, str(ckpt)), IMAGES, layers=(0, -1),
                                pooling='mean')
    np.testing.assert_allclose(feats[1], expected[1].numpy(), atol=1e-5)
    again = run_tool('infer.py', TINY_CLS, ckpt, folder, '--features', out, check=False)
    assert again.returncode == 1 and 'exists' in again.stderr and '--force' in again.stderr
    run_tool('infer.py', TINY_CLS, ckpt, IMAGES[0], '--features', out, '--force')
    assert np.load(out).shape == (1, 64)
