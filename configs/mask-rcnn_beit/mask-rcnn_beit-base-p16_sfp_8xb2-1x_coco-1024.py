# Mask R-CNN + BEiT-B/16 (BEiT Sec. 3.2 transfer) on COCO 2017, 1x schedule (12 epochs),
# 16 images per batch (8 GPUs x 2), 1024 x 1024 inputs (resize + pad), ViTDet simple
# feature pyramid from the last block. Reference: BEiT-B in Mask R-CNN, about 49.8 box AP /
# 44.4 mask AP (MAE paper's comparison, longer LSJ schedule).
# Pre-trained weights: checkpoints/beit_base_p16_224.pth (beitlab or official BEiT file);
# position embedding and relative position bias are interpolated from 14 x 14 to 64 x 64.
# AMP on GPUs: tools/train.py --amp (mmengine AmpOptimWrapper).
_base_ = [
    '../_base_/mmdet_runtime.py', '../_base_/models/mask-rcnn_beit-sfp.py',
    '../_base_/datasets/coco_instance_1024.py'
]
# BEiT-B pre-training (official, and configs/beit/mim_vit-b.py) has no absolute position
# embedding: this backbone's then starts at its initialisation (a checkpoint with one has
# it interpolated to the 64 x 64 grid, and the allowance matches nothing)
model = dict(backbone=dict(init_cfg=dict(
    type='BEiTPretrained', checkpoint='checkpoints/beit_base_p16_224.pth', prefix='backbone.',
    allow_missing=['pos_embed'])))

max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1)
]
# AdamW + layer-wise lr decay (ViTDet's recipe for ViT-B: lr 1e-4, wd 0.1, decay 0.7)
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='beitlab.LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(layer_decay_rate=0.7),
    clip_grad=None)
auto_scale_lr = dict(enable=False, base_batch_size=16)
