# Tiny variant of upernet_beit-base_8xb2-160k_ade20k-640x640.py for tests and smoke runs:
# same ADE20K layout, pipeline and recipe (layer decay, warmup + poly, sliding-window test),
# a 4-layer 64-dim BEiTViT at 64 x 64, BN instead of SyncBN, random init.
_base_ = [
    '../_base_/mmseg_runtime.py', '../_base_/models/upernet_beit.py',
    '../_base_/datasets/ade20k_640x640_seg.py'
]
crop_size = (64, 64)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128),
        img_size=64,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0),
    neck=dict(embed_dims=64, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[64, 64, 64, 64], channels=32, pool_scales=(1, 2),
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=64, channels=16, norm_cfg=norm_cfg),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(43, 43)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(256, 64), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 64), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='beitlab.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=5),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=5, end=20),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20, val_interval=20)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=20))
