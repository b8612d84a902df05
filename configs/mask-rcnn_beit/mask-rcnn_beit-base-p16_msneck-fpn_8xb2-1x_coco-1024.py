# Mask R-CNN + BEiT-B/16 on COCO 2017, 1x, 1024 x 1024, multi-scale variant: blocks 3, 5, 7,
# 11 -> ViTMultiScaleNeck (strides 4/8/16/32, shared with the segmentation transfer) -> mmdet
# FPN (256 channels, + P6). Everything else as the simple-feature-pyramid 1x config.
_base_ = [
    '../_base_/mmdet_runtime.py', '../_base_/models/mask-rcnn_beit-sfp.py',
    '../_base_/datasets/coco_instance_1024.py'
]
model = dict(
    backbone=dict(
        out_indices=(3, 5, 7, 11),
        # no absolute position embedding in BEiT-B pre-training: it starts at its init
        # (as in configs/mask-rcnn_beit/mask-rcnn_beit-base-p16_sfp_8xb2-1x_coco-1024.py)
        init_cfg=dict(type='BEiTPretrained', checkpoint='checkpoints/beit_base_p16_224.pth',
                      prefix='backbone.', allow_missing=['pos_embed'])),
    # a list of necks is built as nn.Sequential by mmengine
    neck=[
        dict(type='ViTMultiScaleNeck', embed_dims=768, norm_cfg=dict(type='SyncBN')),
        dict(type='FPN', in_channels=[768, 768, 768, 768], out_channels=256, num_outs=5)
    ])

max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='beitlab.LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(layer_decay_rate=0.7),
    clip_grad=None)
auto_scale_lr = dict(enable=False, base_batch_size=16)
