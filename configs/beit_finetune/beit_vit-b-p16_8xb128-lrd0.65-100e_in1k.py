# BEiT-B/16 fine-tuning on ImageNet-1k, the paper's recipe (Bao et al., 2021, App. "fine-tuning"
# and the official README): 100 epochs, batch 1024 (8 x 128), AdamW lr 4e-3 with 20 warm-up
# epochs then cosine to 1e-6, layer decay 0.65, weight decay 0.05, drop path 0.1, Mixup 0.8 /
# CutMix 1.0 (switch 0.5), label smoothing 0.1, RandAugment rand-m9-mstd0.5-inc1, random erasing
# 0.25, mean pooling + fc_norm, per-layer relative position bias initialised from the shared
# pre-training table, no absolute position embedding (as BEiT pre-training), layer scale 0.1.
# Evaluation: resize the short side to 256 (224 / 0.875) bicubic, centre crop 224.
# Colour jitter: timm (official BEiT) skips it when RandAugment is on, so it is off here too.
_base_ = ['../_base_/default_runtime.py']

num_classes = 1000
img_size = 224
data_root = 'data/imagenet'
mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]   # --imagenet_default_mean_and_std

model = dict(
    type='ImageClassifier',
    pretrained='checkpoints/beit_vit-b-p16_in1k_mim.pth',   # beitlab MIM or official BEiT file
    backbone=dict(
        type='BEiTViT', arch='base', img_size=img_size, patch_size=16, with_mask_token=False,
        out_type='avg_featmap', use_abs_pos_emb=False, use_rel_pos_bias=True,
        layer_scale_init_value=0.1, drop_path_rate=0.1),
    head=dict(type='ClsHead', num_classes=num_classes, in_channels=768, init_scale=1e-3,
              loss=dict(type='SoftTargetCrossEntropyLoss', label_smoothing=0.1)),
    data_preprocessor=dict(
        type='ClsDataPreprocessor', mean=mean, std=std, to_rgb=True, num_classes=num_classes,
        mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, prob=1.0)))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='RandomResizedCrop', size=img_size, scale=(0.08, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', magnitude=9, magnitude_std=0.5, num_ops=2),
    dict(type='RandomErasing', prob=0.25, mode='pixel', mean=mean[::-1], std=std[::-1]),
    dict(type='PackImageInputs'),
]
test_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='ResizeEdge', scale=256, edge='short', interpolation='bicubic'),
    dict(type='mmcv.CenterCrop', crop_size=img_size),
    dict(type='PackImageInputs'),
]
train_dataloader = dict(
    batch_size=128, num_workers=10, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageNetStyleDataset', data_root=data_root,
                 data_prefix=dict(img_path='train'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128, num_workers=10, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageNetStyleDataset', data_root=data_root,
                 data_prefix=dict(img_path='val'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator

max_epochs, warmup_epochs = 100, 20
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-3, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# lr 4e-3 is for a total batch of 1024; --auto-scale-lr style scaling uses this base
auto_scale_lr = dict(base_batch_size=1024)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=1, max_keep_ckpts=2, save_best='auto'))
