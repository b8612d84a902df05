"""Fine-tuning classifier parts: head init and loss, Mixup/CutMix, preprocessor, algorithm."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from beitlab.models.algorithms.classifier import ImageClassifier
from beitlab.models.data_preprocessors.mixup_cutmix import MixupCutmix
from beitlab.models.heads.cls_head import ClsHead
from beitlab.models.losses.soft_target_cross_entropy_loss import SoftTargetCrossEntropyLoss
from beitlab.utils import register_all_modules

TINY = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)


def test_head_init_is_scaled_by_init_scale():
    torch.manual_seed(0)
    head = ClsHead(num_classes=10, in_channels=64, init_scale=1e-3)
    # trunc_normal(std=0.02) (truncated at +-2 absolute, as timm/official) * 1e-3 -> std 2e-5
    assert 1e-5 < head.fc.weight.std() < 3e-5
    assert torch.all(head.fc.bias == 0)


def test_soft_target_loss_against_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    labels = torch.tensor([0, 2])
    eps, c = 0.1, 3
    logp = F.log_softmax(logits, 1)
    y = torch.full((2, 3), eps / c)
    y[0, 0] += 1 - eps
    y[1, 2] += 1 - eps
    expected = -(y * logp).sum(1).mean()
    loss = SoftTargetCrossEntropyLoss(label_smoothing=eps)
    torch.testing.assert_close(loss(logits, labels), expected)
    torch.testing.assert_close(loss(logits, F.one_hot(labels, 3).float()), expected)
    torch.testing.assert_close(SoftTargetCrossEntropyLoss()(logits, labels),
                               F.cross_entropy(logits, labels))


def test_mixup_and_cutmix_mix_inputs_and_targets_with_the_same_lambda():
    x = torch.arange(4, dtype=torch.float32).reshape(4, 1, 1, 1).expand(4, 1, 8, 8).clone()
    labels = torch.tensor([0, 1, 2, 3])
    mix = MixupCutmix(num_classes=4, mixup_alpha=0.8, cutmix_alpha=0.0, seed=0)
    xm, t = mix(x, labels)
    lam = t[0, 0].item()
    torch.testing.assert_close(xm[0], lam * x[0] + (1 - lam) * x[3])
    assert t[0, 3].item() == pytest.approx(1 - lam)
    cut = MixupCutmix(num_classes=4, mixup_alpha=0.0, cutmix_alpha=1.0, seed=1)
    for _ in range(5):
        xc, t = cut(x, labels)
        # the share of sample 3's pixels in image 0 is exactly its target weight
        share = (xc[0] == 3).float().mean().item()
        assert t[0, 3].item() == pytest.approx(share, abs=1e-6)
        assert torch.allclose(t.sum(1), torch.ones(4))


def tiny_classifier(**kwargs) -> ImageClassifier:
    register_all_modules()
    return ImageClassifier(
        backbone=dict(type='BEiTViT', arch=TINY, img_size=16, patch_size=4,
                      out_type='avg_featmap', use_rel_pos_bias=True),
        head=dict(type='ClsHead', num_classes=5, in_channels=64,
                  loss=dict(type='SoftTargetCrossEntropyLoss', label_smoothing=0.1)),
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3, std=[64.] * 3,
                               num_classes=5, mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0)),
        **kwargs)


def batch(n: int = 4) -> dict:
    samples = []
    for i in range(n):
        s = BaseDataElement()
        s.gt_label = torch.tensor([i % 5])
        samples.append(s)
    return dict(inputs=[torch.randint(0, 255, (3, 16, 16), dtype=torch.uint8) for _ in range(n)],
                data_samples=samples)


def test_classifier_train_step_uses_soft_targets_and_predict_scores():
    model = tiny_classifier()
    data = model.data_preprocessor(batch(), training=True)
    assert data['inputs'].shape == (4, 3, 16, 16)
    assert all(s.gt_score.shape == (5, ) for s in data['data_samples'])
    losses = model(**data, mode='loss')
    # near-uniform start (head scaled by 1e-3): the loss is about log(5)
    assert losses['loss'].item() == pytest.approx(np.log(5), abs=0.05)
    losses['loss'].backward()
    assert model.backbone.patch_embed.proj.weight.grad is not None
    model.eval()
    eval_data = model.data_preprocessor(batch(), training=False)
    assert 'gt_score' not in eval_data['data_samples'][0]
    out = model(**eval_data, mode='predict')
    assert out[0].pred_score.shape == (5, )
    assert out[0].pred_label.item() == out[0].pred_score.argmax().item()


def test_classifier_loads_pretrained_in_init_weights(tmp_path):
    src = tiny_classifier()
    path = tmp_path / 'pre.pth'
    torch.save({'state_dict': {k: v for k, v in src.state_dict().items()}}, path)
    model = tiny_classifier(pretrained=str(path))
    model.init_weights()
    torch.testing.assert_close(model.backbone.blocks[0].mlp.fc1.weight,
                               src.backbone.blocks[0].mlp.fc1.weight)
    assert model.pretrained_report['unexpected_keys'] == []
    assert not torch.equal(model.head.fc.weight, src.head.fc.weight)  # head not loaded
