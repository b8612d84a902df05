# Fine-tune the Fashion-MNIST BEiT (the Fashion-MNIST experiment of docs/DESIGN.md)
# for classification.
# Recipe = BEiT's ImageNet fine-tuning (layer decay 0.65, AdamW wd 0.05, warmup then cosine,
# drop path 0.1, Mixup 0.8 / CutMix 1.0, label smoothing 0.1, RandAugment (9, 0.5), random
# erasing 0.25, mean-pooled features with fc_norm, per-layer relative position bias) at the
# experiment's scale: 32 px images, 4 px patches, 6 layers of 192 dims. As in
# pre-training (configs/beit/beit_vit-fmnist_fashion-mnist.py) the 28 px items are zero-padded
# to 32 px and the crop scale is (0.6, 1) instead of ImageNet's (0.08, 1).
# The pre-trained backbone is loaded by ImageClassifier.init_weights from `pretrained`
# (set it to None, or pass --cfg-options model.pretrained=None, for random initialisation).
_base_ = ['../_base_/default_runtime.py']

num_classes = 10
img_size = 32
data_root = 'data/fashion_mnist'
# Fashion-MNIST statistics (0.2860, 0.3530 of 255), grayscale replicated to 3 channels.
mean, std = [72.94] * 3, [90.02] * 3

model = dict(
    type='ImageClassifier',
    pretrained='checkpoints/beit_fashion-mnist.pth',
    backbone=dict(
        type='BEiTViT',
        with_mask_token=False,         # the official fine-tuning model has no [MASK]
        arch=dict(embed_dims=192, num_layers=6, num_heads=3, feedforward_channels=768),
        img_size=img_size, patch_size=4,
        out_type='avg_featmap',        # mean of patch tokens + fc_norm (official BEiT)
        use_abs_pos_emb=True,
        use_rel_pos_bias=True,         # per layer, each initialised from the shared table
        layer_scale_init_value=0.1,
        drop_path_rate=0.1),
    head=dict(type='ClsHead', num_classes=num_classes, in_channels=192, init_scale=1e-3,
              loss=dict(type='SoftTargetCrossEntropyLoss', label_smoothing=0.1)),
    data_preprocessor=dict(
        type='ClsDataPreprocessor', mean=mean, std=std, to_rgb=True, num_classes=num_classes,
        mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, prob=1.0)))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='mmcv.Pad', size=(img_size, img_size), pad_val=0),   # 28 -> 32 as in pre-training
    dict(type='RandomResizedCrop', size=img_size, scale=(0.6, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', magnitude=9, magnitude_std=0.5, fill=(73, 73, 73)),
    dict(type='RandomErasing', prob=0.25, mode='pixel', mean=mean, std=std),
    dict(type='PackImageInputs'),
]
test_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='mmcv.Pad', size=(img_size, img_size), pad_val=0),
    dict(type='PackImageInputs'),
]

train_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageNetStyleDataset', data_root=data_root, ann_file='meta/train.txt',
                 data_prefix=dict(img_path='train'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageNetStyleDataset', data_root=data_root, ann_file='meta/val.txt',
                 data_prefix=dict(img_path='val'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator

# Schedule by iteration (label-efficiency runs change only max_iters / warmup_iters and the
# training list). lr 1e-3 at batch 64: BEiT's 4e-3 at 1024 scaled linearly would be 2.5e-4,
# too low for runs of a few hundred steps (see docs/finetune.md).
max_iters, warmup_iters = 3000, 300
# The fast path (beitlab/engine/fast_path.py): bf16 autocast of the training step and fused
# AdamW (evaluation stays fp32; the compiled loss and exact masks belong to pre-training and
# do not apply). `--cfg-options fast_path=False` fine-tunes in fp32.
fast_path = True
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
# mmengine's IterBasedTrainLoop (same batches, same order) without its 2 s pause at every pass
# over the data: with 1 % of the labels a pass is 10 steps
train_cfg = dict(type='PauselessIterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(base_batch_size=64)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=1000, by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
