# Mask R-CNN on Fashion-MNIST scenes (48 x 48, 1-3 real items each) with the
# Fashion-MNIST BEiT backbone (docs/DESIGN.md: 6 layers, 192 dims, patch 4) loaded from
# checkpoints/beit_fashion-mnist.pth. The 12 x 12 patch grid is 1.5x the pre-training grid
# (8 x 8): position embedding and relative position bias are interpolated on load.
# Random-init baseline, same budget: --cfg-options model.backbone.init_cfg=None
# (tools/analysis_tools/det_pretrain_vs_scratch.py runs both).
_base_ = [
    '../_base_/mmdet_runtime.py', '../_base_/models/mask-rcnn_beit-sfp.py',
    '../_base_/datasets/fashion-mnist-scenes_instance.py'
]
num_classes = 10
channels = 128
model = dict(
    # the BEiT pre-training normalisation (configs/beit/beit_vit-fmnist_fashion-mnist.py)
    # (pad to a multiple of 16 only: 48 px must stay 48 px for the position embedding)
    data_preprocessor=dict(mean=[72.94] * 3, std=[90.02] * 3, bgr_to_rgb=False,
                           pad_size_divisor=16),
    backbone=dict(
        arch=dict(embed_dims=192, num_layers=6, num_heads=3, feedforward_channels=768),
        img_size=48,
        patch_size=4,
        out_indices=(5, ),
        drop_path_rate=0.1,
        init_cfg=dict(type='BEiTPretrained', checkpoint='checkpoints/beit_fashion-mnist.pth',
                      prefix='backbone.')),
    # stride-4 map -> strides 4, 8, 16 (+ 32 by max-pool)
    neck=dict(in_channels=192, out_channels=channels, scale_factors=(1.0, 0.5, 0.25),
              num_outs=4),
    rpn_head=dict(
        in_channels=channels, feat_channels=channels,
        anchor_generator=dict(scales=[4], strides=[4, 8, 16, 32])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels, featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(in_channels=channels, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=channels, featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(num_convs=1, in_channels=channels, conv_out_channels=64,
                       num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

# a fixed iteration budget (tools/analysis_tools/det_pretrain_vs_scratch.py --iters changes it)
max_iters = 600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, eta_min_ratio=0.01)
]
# AdamW with layer-wise lr decay over the 6 blocks (BEiT Sec. 3.1); no decay on norms,
# biases, position embeddings and bias tables. AMP: tools/train.py --amp.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='beitlab.LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=4e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.75),
    clip_grad=dict(max_norm=5.0))
# log_metric_by_epoch=False: a validation is logged at its iteration (at epoch 0 otherwise)
default_hooks = dict(logger=dict(interval=10, log_metric_by_epoch=False),
                     checkpoint=dict(by_epoch=False, interval=max_iters))
log_processor = dict(by_epoch=False)
