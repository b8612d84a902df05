"""beitlab inside mmdetection: Mask R-CNN / RetinaNet with BEiTViT built from configs, loss and
predict on CPU, the multi-scale-neck variant, layer-wise lr decay through the scoped
constructor, and the pre-trained initializer with grid interpolation."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import beitlab.downstream.mmdet_adapter  # noqa: F401  (what custom_imports does)
from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.models.necks.simple_feature_pyramid import SimpleFeaturePyramid

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'mask-rcnn_beit'
RETINANET_CONFIGS = CONFIGS.parent / 'retinanet_beit'
TINY_CFG = CONFIGS / 'mask-rcnn_beit-tiny-p4_sfp_1xb2-2it_fashion-mnist-scenes-32x32.py'
TINY_ARCH = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)


def build(model_cfg):
    from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(copy.deepcopy(model_cfg))
        model.init_weights()  # as the Runner does, inside mmdet's scope
    return model


def demo_batch(model, num_images=2, size=32):
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(0)
    packed = demo_mm_inputs(num_images, [[3, size, size]] * num_images, num_items=[2, 3],
                            num_classes=10, with_mask=True)
    return model.data_preprocessor(packed, True)


@pytest.fixture(scope='module')
def tiny_cfg():
    return Config.fromfile(str(TINY_CFG))


def test_registered_in_mmdet_without_shadowing():
    from mmdet.registry import MODELS, WEIGHT_INITIALIZERS
    assert MODELS.get('BEiTViT') is BEiTViT
    assert MODELS.get('SimpleFeaturePyramid') is SimpleFeaturePyramid
    assert MODELS.get('ViTMultiScaleNeck').__module__ == 'beitlab.models.necks.multiscale_neck'
    assert WEIGHT_INITIALIZERS.get('BEiTPretrained') is not None
    # mmdet's own parts are untouched
    assert MODELS.get('FPN').__module__.startswith('mmdet.')
    beitlab.downstream.mmdet_adapter.register_into_mmdet()  # idempotent


def test_mask_rcnn_loss_and_predict(tiny_cfg):
    model = build(tiny_cfg.model)
    assert isinstance(model.backbone, BEiTViT) and type(model).__name__ == 'MaskRCNN'
    data = demo_batch(model)
    model.train()
    losses = model(**data, mode='loss')
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'):
        assert key in losses
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    grad = model.backbone.blocks[0].attn.qkv.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    # the configured box losses are Smooth L1 (RPN and RoI head)
    assert type(model.roi_head.bbox_head.loss_bbox).__name__ == 'SmoothL1Loss'
    model.eval()
    with torch.no_grad():
        results = model(**demo_batch(model), mode='predict')
    assert len(results) == 2
    pred = results[0].pred_instances
    assert pred.bboxes.shape[-1] == 4 and pred.masks.shape[-2:] == (32, 32)
    assert len(pred.bboxes) == len(pred.scores) == len(pred.masks)


def test_configurable_losses_and_multiscale_neck(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg.model)
    # four maps, as blocks 3/5/7/11 of BEiT-B
    cfg.backbone.update(arch=dict(TINY_ARCH, num_layers=4), out_indices=(0, 1, 2, 3))
    cfg.neck = [dict(type='ViTMultiScaleNeck', embed_dims=64),
                dict(type='FPN', in_channels=[64] * 4, out_channels=32, num_outs=4)]
    cfg.roi_head.bbox_head.loss_bbox = dict(type='L1Loss', loss_weight=1.0)
    cfg.roi_head.bbox_head.loss_cls = dict(type='CrossEntropyLoss', loss_weight=2.0)
    model = build(cfg)
    assert type(model.roi_head.bbox_head.loss_bbox).__name__ == 'L1Loss'
    # inputs of 32 px with patch 4 -> FPN levels of stride 1, 2, 4, 8 of the 8 x 8 grid
    data = demo_batch(model)
    feats = model.extract_feat(data['inputs'])
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4]
    losses = model(**data, mode='loss')
    assert torch.isfinite(model.parse_losses(losses)[0])


def test_retinanet_focal_and_smooth_l1():
    cfg = Config.fromfile(str(RETINANET_CONFIGS / 'retinanet_beit-base-p16_sfp_8xb2-1x_coco-1024.py'))
    model_cfg = cfg.model
    model_cfg.backbone.update(arch=TINY_ARCH, img_size=32, patch_size=4, out_indices=(1, ),
                              init_cfg=None)
    model_cfg.neck.update(in_channels=64, out_channels=32, scale_factors=(1.0, 0.5, 0.25))
    model_cfg.bbox_head.update(num_classes=10, in_channels=32, feat_channels=32,
                               stacked_convs=1)
    model_cfg.bbox_head.anchor_generator.strides = [4, 8, 16, 32, 64]
    model = build(model_cfg)
    head = model.bbox_head
    assert type(head.loss_cls).__name__ == 'FocalLoss' and head.loss_cls.gamma == 2.0
    assert type(head.loss_bbox).__name__ == 'SmoothL1Loss'
    losses = model(**demo_batch(model), mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox'}
    assert torch.isfinite(model.parse_losses(losses)[0])


def test_layer_decay_groups_on_mask_rcnn(tiny_cfg):
    model = build(tiny_cfg.model)
    with DefaultScope.overwrite_default_scope('mmdet'):
        wrapper = build_optim_wrapper(model, copy.deepcopy(tiny_cfg.optim_wrapper))
    lr, decay, L = 1e-4, 0.75, 2
    by_name = {n: g for g in wrapper.optimizer.param_groups for n in g['param_names']}
    expected = {
        'backbone.patch_embed.proj.weight': decay ** (L + 1),
        'backbone.pos_embed': decay ** (L + 1),
        'backbone.blocks.0.attn.qkv.weight': decay ** L,
        'backbone.blocks.1.mlp.fc1.weight': decay ** (L - 1),
        'neck.stages.0.1.weight': 1.0,
        'roi_head.mask_head.conv_logits.weight': 1.0,
        'rpn_head.rpn_conv.weight': 1.0,
    }
    for name, scale in expected.items():
        assert by_name[name]['lr'] == pytest.approx(lr * scale), name
    assert by_name['backbone.pos_embed']['weight_decay'] == 0.0
    assert by_name['backbone.blocks.0.attn.qkv.weight']['weight_decay'] == 0.05
    assert by_name['rpn_head.rpn_conv.bias']['weight_decay'] == 0.0
    n_params = sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(len(g['params']) for g in wrapper.optimizer.param_groups) == n_params


def test_pretrained_initializer_interpolates_to_detection_grid(tmp_path, tiny_cfg):
    torch.manual_seed(0)
    src = BEiTViT(arch=TINY_ARCH, img_size=16, patch_size=4, use_shared_rel_pos_bias=True,
                  layer_scale_init_value=0.1)  # the pre-training layout, 4 x 4 grid
    state = {'backbone.' + k: v for k, v in src.state_dict().items()}
    torch.save({'state_dict': state}, tmp_path / 'mim.pth')
    cfg = copy.deepcopy(tiny_cfg.model)
    cfg.backbone.init_cfg = dict(type='BEiTPretrained', checkpoint=str(tmp_path / 'mim.pth'),
                                 prefix='backbone.')
    model = build(cfg)  # 32 px -> 8 x 8 grid, one table per layer
    assert torch.equal(model.backbone.blocks[1].mlp.fc2.weight, src.blocks[1].mlp.fc2.weight)
    assert model.backbone.pos_embed.shape == (1, 65, 64)
    # the CLS position is kept as it is
    assert torch.equal(model.backbone.pos_embed[0, 0], src.pos_embed[0, 0])
    table = model.backbone.blocks[0].attn.relative_position_bias_table
    assert table.shape == (15 * 15 + 3, 2)
    assert torch.equal(table[-3:], src.rel_pos_bias.relative_position_bias_table[-3:])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='AmpOptimWrapper needs a GPU')
def test_amp_optim_wrapper_with_layer_decay(tiny_cfg):
    model = build(tiny_cfg.model).cuda()
    cfg = copy.deepcopy(tiny_cfg.optim_wrapper)
    cfg.type = 'AmpOptimWrapper'
    with DefaultScope.overwrite_default_scope('mmdet'):
        wrapper = build_optim_wrapper(model, cfg)
    assert type(wrapper).__name__ == 'AmpOptimWrapper'
    with wrapper.optim_context(model):
        losses = model(**demo_batch(model), mode='loss')
    wrapper.update_params(model.parse_losses(losses)[0])


@pytest.mark.parametrize('path', sorted([*CONFIGS.glob('*.py'), *RETINANET_CONFIGS.glob('*.py')]),
                         ids=lambda p: p.name)
def test_configs_are_consistent(path):
    """Every config loads; inputs are padded to the backbone's img_size (absolute position
    embedding); windows tile the patch grid; the neck reads the backbone's channels."""
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmdet'
    assert 'beitlab.downstream.mmdet_adapter' in cfg.custom_imports['imports']
    backbone = cfg.model.backbone
    grid = backbone.img_size // backbone.patch_size
    assert backbone.img_size % backbone.patch_size == 0
    if backbone.get('window_size', 0):
        assert grid % backbone.window_size == 0
    pads = [t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'Pad']
    if pads:
        assert tuple(pads[0]['size']) == (backbone.img_size, ) * 2
    necks = cfg.model.neck if isinstance(cfg.model.neck, list) else [cfg.model.neck]
    dims = backbone.arch['embed_dims']
    assert necks[0].get('in_channels', necks[0].get('embed_dims')) == dims
    assert cfg.optim_wrapper.constructor == 'beitlab.LayerDecayOptimWrapperConstructor'
