# Tiny variant of beit_vit-b-p16_8xb128-lrd0.65-100e_in1k.py (the BEiT-B ImageNet fine-tuning
# recipe) for tests: 2 layers of 64 dims, 32 px images, 4 px patches, 2 iterations, no
# pre-trained checkpoint.
_base_ = ['./beit_vit-b-p16_8xb128-lrd0.65-100e_in1k.py']

num_classes = 10
model = dict(
    pretrained=None,
    backbone=dict(arch=dict(_delete_=True, embed_dims=64, num_layers=2, num_heads=2,
                            feedforward_channels=128),
                  img_size=32, patch_size=4),
    head=dict(num_classes=num_classes, in_channels=64),
    data_preprocessor=dict(num_classes=num_classes))
train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='RandomResizedCrop', size=32, scale=(0.08, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', magnitude=9, magnitude_std=0.5, num_ops=2),
    dict(type='RandomErasing', prob=0.25, mode='pixel'),
    dict(type='PackImageInputs'),
]
test_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='ResizeEdge', scale=37, edge='short', interpolation='bicubic'),
    dict(type='mmcv.CenterCrop', crop_size=32),
    dict(type='PackImageInputs'),
]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                      dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=2, by_epoch=False, save_best=None))
log_processor = dict(by_epoch=False)
