# RetinaNet + BEiT-B/16 on COCO 2017, 1x, 1024 x 1024: RetinaNet's detection objective
# (Focal Loss for classification + Smooth L1 for box regression); boxes only (bbox AP).
_base_ = [
    '../_base_/mmdet_runtime.py', '../_base_/models/retinanet_beit-sfp.py',
    '../_base_/datasets/coco_instance_1024.py'
]
# BEiT-B pre-training (official, and configs/beit/mim_vit-b.py) has no absolute position
# embedding: this backbone's then starts at its initialisation (a checkpoint with one has
# it interpolated to the 64 x 64 grid, and the allowance matches nothing)
model = dict(backbone=dict(init_cfg=dict(
    type='BEiTPretrained', checkpoint='checkpoints/beit_base_p16_224.pth', prefix='backbone.',
    allow_missing=['pos_embed'])))
val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator

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
