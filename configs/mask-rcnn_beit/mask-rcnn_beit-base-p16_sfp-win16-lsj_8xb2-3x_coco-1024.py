# Mask R-CNN + BEiT-B/16 on COCO 2017, 3x schedule (36 epochs), large-scale jitter
# (ViTDet / Ghiasi et al. 2021: resize by 0.1-2.0, crop 1024 x 1024), 16 images per batch.
# ViTDet-style backbone: windowed attention (16 x 16 patches, 16 windows over the 64 x 64 grid)
# in all blocks but 2, 5, 8, 11, which stay global; same parameters as the 1x config, so the
# same pre-trained weights load.
_base_ = [
    '../_base_/mmdet_runtime.py', '../_base_/models/mask-rcnn_beit-sfp.py',
    '../_base_/datasets/coco_instance_1024.py'
]
model = dict(backbone=dict(
    window_size=16,
    global_attn_indexes=(2, 5, 8, 11),
    # no absolute position embedding in BEiT-B pre-training: it starts at its init
    # (as in configs/mask-rcnn_beit/mask-rcnn_beit-base-p16_sfp_8xb2-1x_coco-1024.py)
    init_cfg=dict(type='BEiTPretrained', checkpoint='checkpoints/beit_base_p16_224.pth',
                  prefix='backbone.', allow_missing=['pos_embed'])))

lsj_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=(1024, 1024), ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=(1024, 1024),
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=(1024, 1024), pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=lsj_pipeline))

max_epochs = 36
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=3)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33],
         gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='beitlab.LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(layer_decay_rate=0.7),
    clip_grad=None)
auto_scale_lr = dict(enable=False, base_batch_size=16)
