"""beitlab inside mmseg: registration, the UPerNet model, losses, LLRD, pre-trained loading,
and tools/train.py + tools/test.py on a tiny Fashion-MNIST-scenes set.

Numbers are checked against hand computations: the auxiliary loss against a cross-entropy on
the level-2 features times 0.4, sliding-window against whole-image inference, the layer
decay against ``decay ** (L + 1 - layer)``, mIoU / aAcc against a confusion matrix of the
predictions that ``tools/test.py --out`` saved.
"""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData

import beitlab.downstream.mmseg_adapter as adapter
from beitlab.checkpoint.pretrained import load_pretrained_backbone
from beitlab.datasets.fashion_mnist_scenes_seg import FASHION_MNIST_SCENES_CLASSES, FashionMNISTScenesDataset
from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.models.necks.multiscale_neck import ViTMultiScaleNeck
from beitlab.ops.relative_position import resize_pos_embed, resize_rel_pos_bias_table

from ..tools_helpers import FASHION_MNIST_SUBSET, REPO_ROOT, run_tool

CFG_DIR = REPO_ROOT / 'configs' / 'upernet_beit'
TINY_ADE = CFG_DIR / 'upernet_beit-tiny_1xb2-20it_ade20k-64x64.py'
TINY_FMNIST = CFG_DIR / 'upernet_beit-tiny_1xb2-2it_fashion-mnist-scenes-32x32.py'
FMNIST = CFG_DIR / 'upernet_beit-fmnist_1xb8-300it_fashion-mnist-scenes-48x48.py'
MIM_CONFIG = REPO_ROOT / 'configs' / 'beit' / 'beit_vit-fmnist_fashion-mnist.py'


@pytest.fixture(autouse=True)
def mmseg_scope():
    """Build under mmseg's scope, as the Runner does for these configs."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def build_segmentor(cfg_path: Path, **backbone_overrides):
    from mmseg.registry import MODELS
    cfg = Config.fromfile(str(cfg_path))
    cfg.model.backbone.update(backbone_overrides)
    torch.manual_seed(0)
    return MODELS.build(cfg.model), cfg


def seg_batch(model, size, num_classes, batch=2, train=True, ignore_pixels=0):
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(1)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, *size), generator=g).float())
        label = torch.randint(0, num_classes, (1, *size), generator=g)
        label.view(-1)[:ignore_pixels] = 255
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=size, ori_shape=size, pad_shape=size))
        samples.append(sample)
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples), train)


# ----------------------------------------------------------------------------- registration
def test_adapter_registers_into_mmseg_registries() -> None:
    from mmseg.registry import DATASETS, MODELS, WEIGHT_INITIALIZERS
    assert MODELS.get('BEiTViT') is BEiTViT
    assert MODELS.get('ViTMultiScaleNeck') is ViTMultiScaleNeck
    assert MODELS.get('BEiT') is not BEiTViT  # mmseg's own BEiT is untouched
    assert WEIGHT_INITIALIZERS.get('BEiTPretrained') is adapter.BEiTPretrained
    assert DATASETS.get('FashionMNISTScenesDataset') is FashionMNISTScenesDataset
    adapter.register_into_mmseg()  # idempotent
    for cls in (adapter.BEiTPretrained, FashionMNISTScenesDataset):
        assert cls.__doc__ and cls.__doc__.strip()


@pytest.mark.parametrize('cfg_path', sorted(CFG_DIR.glob('*.py')), ids=lambda p: p.name)
def test_every_config_resolves_its_types(cfg_path: Path) -> None:
    from beitlab.utils import check_config_types
    cfg = Config.fromfile(str(cfg_path))
    assert cfg.default_scope == 'mmseg'
    check_config_types(cfg)
    assert cfg.model.auxiliary_head.in_index == 2
    assert cfg.model.auxiliary_head.loss_decode.loss_weight == 0.4
    assert cfg.model.decode_head.ignore_index == 255
    assert cfg.optim_wrapper.constructor == 'beitlab.LayerDecayOptimWrapperConstructor'


# ----------------------------------------------------------------------------- neck
def test_neck_matches_its_four_operations() -> None:
    neck = ViTMultiScaleNeck(embed_dims=8).eval()
    feats = [torch.randn(2, 8, 6, 6) for _ in range(4)]
    with torch.no_grad():
        out = neck(feats)
        up = neck.upsample_4x
        expected0 = up[3](F.gelu(up[1](up[0](feats[0]))))
        expected1 = F.conv_transpose2d(feats[1], neck.upsample_2x.weight, neck.upsample_2x.bias,
                                       stride=2)
    assert [tuple(o.shape[-2:]) for o in out] == [(24, 24), (12, 12), (6, 6), (3, 3)]
    torch.testing.assert_close(out[0], expected0)
    torch.testing.assert_close(out[1], expected1)
    assert out[2] is feats[2]
    torch.testing.assert_close(out[3], F.max_pool2d(feats[3], 2))
    assert isinstance(up[1], torch.nn.BatchNorm2d)  # BN by default (CPU), SyncBN configurable
    with pytest.raises(ValueError, match='expects 4 feature maps'):
        neck(feats[:3])


def test_encoder_decoder_neck_strides_are_4_8_16_32() -> None:
    model, _ = build_segmentor(TINY_ADE)
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 64, 96))
    assert [(64 // f.shape[2], 96 // f.shape[3]) for f in feats] == [(4, 4), (8, 8), (16, 16),
                                                                   (32, 32)]


# ----------------------------------------------------------------------------- model
def test_loss_aux_head_is_level_2_with_weight_0_4_and_backbone_gets_gradients() -> None:
    model, cfg = build_segmentor(TINY_ADE)
    model.eval()  # no dropout, BN on running stats: the hand computation is deterministic
    data = seg_batch(model, (64, 64), 150, ignore_pixels=300)
    losses = model(**data, mode='loss')
    assert {'decode.loss_ce', 'aux.loss_ce', 'decode.acc_seg', 'aux.acc_seg'} <= set(losses)
    labels = torch.stack([s.gt_sem_seg.data[0] for s in data['data_samples']])
    with torch.no_grad():
        feats = model.extract_feat(data['inputs'])
        logits = model.auxiliary_head(feats)  # FCNHead picks feats[2] itself
        logits = F.interpolate(logits, size=(64, 64), mode='bilinear', align_corners=False)
        ce = F.cross_entropy(logits, labels, ignore_index=255, reduction='sum') / labels.numel()
    torch.testing.assert_close(losses['aux.loss_ce'].detach(), 0.4 * ce, rtol=1e-4, atol=1e-5)
    total = losses['decode.loss_ce'] + losses['aux.loss_ce']
    total.backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith('backbone.blocks.0.')]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_predict_whole_and_sliding_window() -> None:
    model, _ = build_segmentor(TINY_ADE)
    model.eval()
    data = seg_batch(model, (64, 64), 150, batch=1, train=False)
    with torch.no_grad():
        model.test_cfg.mode = 'whole'
        whole = model(**data, mode='predict')[0]
        model.test_cfg.mode = 'slide'  # one 64 x 64 window covers the image: same logits
        model.test_cfg.crop_size, model.test_cfg.stride = (64, 64), (43, 43)
        slide = model(**data, mode='predict')[0]
        # a 64 x 112 image: two overlapping windows, prediction at full resolution
        wide = seg_batch(model, (64, 112), 150, batch=1, train=False)
        wide_pred = model(**wide, mode='predict')[0]
    torch.testing.assert_close(slide.seg_logits.data, whole.seg_logits.data, rtol=1e-4, atol=1e-4)
    assert whole.pred_sem_seg.data.shape == (1, 64, 64)
    assert wide_pred.pred_sem_seg.data.shape == (1, 64, 112)


def test_dice_loss_is_a_config_option() -> None:
    from mmseg.registry import MODELS
    cfg = Config.fromfile(str(TINY_ADE))
    # the override documented in docs/segmentation.md
    cfg.merge_from_dict({'model.decode_head.loss_decode.type': 'DiceLoss'})
    dice_only = MODELS.build(cfg.model)
    cfg.model.decode_head.loss_decode = [
        dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        dict(type='DiceLoss', use_sigmoid=False, loss_weight=0.5)]
    both = MODELS.build(cfg.model)
    for model, expected in ((dice_only, {'decode.loss_dice'}), (both, {'decode.loss_ce',
                                                                       'decode.loss_dice'})):
        losses = model(**seg_batch(model, (64, 64), 150), mode='loss')
        assert expected <= set(losses) and all(torch.isfinite(losses[k]) for k in expected)
    assert 'decode.loss_ce' not in dice_only(**seg_batch(dice_only, (64, 64), 150), mode='loss')


def test_layer_decay_groups_from_the_mmseg_config() -> None:
    model, cfg = build_segmentor(TINY_ADE)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    base_lr, decay, num_layers = 3e-5, 0.9, 4
    lr_of = {}
    for group in wrapper.optimizer.param_groups:
        for name in group['param_names']:
            lr_of[name] = group['lr']
    assert set(lr_of) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert lr_of['backbone.patch_embed.proj.weight'] == pytest.approx(base_lr * decay**5)
    assert lr_of['backbone.blocks.0.attn.qkv.weight'] == pytest.approx(base_lr * decay**4)
    assert lr_of['backbone.blocks.3.mlp.fc1.weight'] == pytest.approx(base_lr * decay**1)
    for name in ('neck.upsample_2x.weight', 'decode_head.conv_seg.weight',
                 'auxiliary_head.conv_seg.weight'):
        assert lr_of[name] == pytest.approx(base_lr), name
    assert num_layers == model.backbone.num_layers


# ----------------------------------------------------------------------------- pre-trained
def fake_mim_checkpoint(path: Path, img_size: int = 16) -> dict:
    """A beitlab MIM checkpoint of the tiny arch at another resolution: shared relative
    position bias, abs pos embed, ``backbone.*`` and ``head.*`` keys."""
    torch.manual_seed(3)
    pre = BEiTViT(arch=dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128),
                  img_size=img_size, patch_size=4, out_type='raw', use_abs_pos_emb=True,
                  use_shared_rel_pos_bias=True, layer_scale_init_value=0.1)
    with torch.no_grad():
        for p in pre.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # not the default init, so a load is visible
    state = {f'backbone.{k}': v for k, v in pre.state_dict().items()}
    state.update({'head.fc.weight': torch.randn(32, 64), 'head.fc.bias': torch.zeros(32)})
    torch.save({'state_dict': state, 'meta': {}}, path)
    return state


def test_mim_checkpoint_loads_with_no_unexpected_keys_and_interpolated_bias(tmp_path) -> None:
    path = tmp_path / 'mim.pth'
    state = fake_mim_checkpoint(path, img_size=16)  # 4 x 4 grid -> segmentation's 8 x 8
    model, _ = build_segmentor(TINY_FMNIST, init_cfg=dict(type='BEiTPretrained',
                                                          checkpoint=str(path),
                                                          prefix='backbone.'))
    model.init_weights()
    backbone = model.backbone
    shared = state['backbone.rel_pos_bias.relative_position_bias_table']
    expected_table = resize_rel_pos_bias_table(shared, (4, 4), (8, 8))
    for block in backbone.blocks:
        torch.testing.assert_close(block.attn.relative_position_bias_table.data, expected_table)
    torch.testing.assert_close(backbone.pos_embed.data,
                               resize_pos_embed(state['backbone.pos_embed'], (4, 4), (8, 8)))
    torch.testing.assert_close(backbone.blocks[2].mlp.fc1.weight.data,
                               state['backbone.blocks.2.mlp.fc1.weight'])
    # the report of the same load: nothing unexpected, nothing missing in the backbone
    from mmseg.registry import MODELS
    cfg = Config.fromfile(str(TINY_FMNIST))
    fresh = MODELS.build(cfg.model.backbone)
    report = load_pretrained_backbone(fresh, str(path), 'backbone.')
    assert report['unexpected_keys'] == []
    assert report['missing_keys'] == []
    # the MIM head and the [MASK] embedding (the seg backbone has with_mask_token=False)
    assert sorted(report['dropped_keys']) == ['head.fc.bias', 'head.fc.weight', 'mask_token']
    assert len(report['copied_keys']) == 4


def test_fashion_mnist_mim_checkpoint_loads_into_the_seg_backbone(tmp_path) -> None:
    """The published weights of configs/beit/beit_vit-fmnist_fashion-mnist.py (what
    tools/demo.sh makes) load with nothing missing or unexpected into the backbone of the
    Fashion-MNIST scenes config; random weights stand in for the trained ones."""
    from mmseg.registry import MODELS

    from beitlab.registry import MODELS as BEITLAB_MODELS
    from beitlab.utils import register_all_modules
    register_all_modules()
    mim_cfg = Config.fromfile(str(MIM_CONFIG))
    mim_cfg.model.target_generator.checkpoint = None
    with DefaultScope.overwrite_default_scope('beitlab'):
        mim = BEITLAB_MODELS.build(mim_cfg.model)
    training_ckpt = tmp_path / 'iter_1.pth'
    torch.save(dict(state_dict=mim.state_dict(), meta=dict(iter=1)), training_ckpt)
    published = tmp_path / 'beit_fashion-mnist.pth'
    run_tool('model_converters/publish_mim_checkpoint.py', training_ckpt, published)

    cfg = Config.fromfile(str(FMNIST))
    backbone_cfg = dict(cfg.model.backbone)
    backbone_cfg.pop('init_cfg')
    report = load_pretrained_backbone(MODELS.build(backbone_cfg), str(published))
    assert report['unexpected_keys'] == [] and report['missing_keys'] == []
    # the shared pre-training table becomes one table per layer of the 6-layer backbone
    assert len(report['copied_keys']) == 6


def test_bad_init_target_is_named() -> None:
    with pytest.raises(TypeError, match='BEiTViT'):
        adapter.BEiTPretrained('x.pth')(torch.nn.Linear(2, 2))


# ----------------------------------------------------------------------------- tools
@pytest.fixture(scope='module')
def tiny_scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('scenes')
    run_tool('dataset_converters/fashion_mnist_scenes_seg.py', '--src', FASHION_MNIST_SUBSET,
             '--out', root, '--size', '32',
             '--min-item-size', '12', '--max-item-size', '20', '--num-train', '4',
             '--num-val', '4')
    return root


def data_root_options(root: Path) -> list:
    return [f'{k}_dataloader.dataset.data_root={root}' for k in ('train', 'val', 'test')]


def test_converter_writes_mmseg_layout(tiny_scenes: Path) -> None:
    from PIL import Image
    classes = (tiny_scenes / 'classes.txt').read_text().split()
    assert tuple(classes) == FASHION_MNIST_SCENES_CLASSES
    for split in ('train', 'val'):
        imgs = sorted((tiny_scenes / 'img_dir' / split).glob('*.png'))
        anns = sorted((tiny_scenes / 'ann_dir' / split).glob('*.png'))
        assert [p.name for p in imgs] == [p.name for p in anns] and len(imgs) == 4
        for img_path, ann_path in zip(imgs, anns):
            img, ann = np.array(Image.open(img_path)), np.array(Image.open(ann_path))
            assert img.shape == ann.shape == (32, 32)
            assert ann.max() <= 10 and (ann > 0).any() and (ann == 0).any()
            assert (img[ann == 0] == 0).all()  # background pixels are the black canvas
            assert (img[ann > 0] > 30).all()  # item masks: pixels above the threshold


def test_train_two_iterations_then_test_metrics_match_saved_predictions(
        tiny_scenes: Path, tmp_path) -> None:
    work = tmp_path / 'work'
    run_tool('train.py', TINY_FMNIST, '--work-dir', work, '--cfg-options',
             *data_root_options(tiny_scenes))
    checkpoint = work / 'iter_2.pth'
    assert checkpoint.is_file()

    preds = tmp_path / 'preds.pkl'
    run_tool('test.py', TINY_FMNIST, checkpoint, '--work-dir', work, '--out', preds,
             '--show-dir', 'vis', '--cfg-options', *data_root_options(tiny_scenes))
    metrics = json.loads((work / 'metrics.json').read_text())
    with open(preds, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 4
    num_classes = 11
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for r in results:
        pred = np.asarray(r['pred_sem_seg']['data']).reshape(-1)
        gt = np.asarray(r['gt_sem_seg']['data']).reshape(-1)
        keep = gt != 255
        confusion += np.bincount(gt[keep] * num_classes + pred[keep],
                                 minlength=num_classes**2).reshape(num_classes, num_classes)
    tp = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = tp / union
        acc = tp / confusion.sum(1)
    assert metrics['aAcc'] == pytest.approx(round(tp.sum() / confusion.sum() * 100, 2), abs=0.011)
    assert metrics['mIoU'] == pytest.approx(round(np.nanmean(iou) * 100, 2), abs=0.011)
    assert metrics['mAcc'] == pytest.approx(round(np.nanmean(acc) * 100, 2), abs=0.011)
    overlays = list((work / 'vis').rglob('*.png'))
    assert len(overlays) == 4, sorted(str(p) for p in (work / 'vis').rglob('*'))
