# UPerNet on the Fashion-MNIST BEiT (the docs/DESIGN.md experiment: 6 layers, 192 dims,
# 4 px patches, pre-trained at 32 px) for scenes of real Fashion-MNIST items at 48 x 48
# (12 x 12 patches): the pre-trained shared relative position bias is copied into every
# layer and interpolated 8x8 -> 12x12 together with the absolute position embedding.
# Recipe scaled down from the official self-supervised one (*_pt: AdamW lr 7e-4, layer decay
# 0.65, warmup then poly) to 300 iterations of batch 8 on 2 CPU cores; BN instead of SyncBN.
#   python tools/dataset_converters/fashion_mnist_scenes_seg.py --out data/fashion_mnist_scenes
#   python tools/train.py configs/upernet_beit/upernet_beit-fmnist_1xb8-300it_fashion-mnist-scenes-48x48.py
# Random initialisation, same budget: --cfg-options model.backbone.init_cfg=None
_base_ = [
    '../_base_/mmseg_runtime.py', '../_base_/models/upernet_beit.py',
    '../_base_/datasets/fashion-mnist-scenes_seg.py'
]
img_size = 48
num_classes = 11
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    # Fashion-MNIST statistics, as the pre-training config (grayscale replicated to 3 channels)
    data_preprocessor=dict(mean=[72.94] * 3, std=[90.02] * 3, size=(img_size, img_size),
                           test_cfg=dict(size_divisor=4)),
    backbone=dict(
        arch=dict(embed_dims=192, num_layers=6, num_heads=3, feedforward_channels=768),
        img_size=img_size,
        patch_size=4,
        out_indices=(1, 2, 3, 5),  # BEiT-B's 3, 5, 7, 11 of 12 layers, scaled to 6
        use_abs_pos_emb=True,  # the pre-trained model has one: interpolated, not dropped
        use_rel_pos_bias=True,
        layer_scale_init_value=0.1,
        drop_path_rate=0.1,
        init_cfg=dict(type='BEiTPretrained', checkpoint='checkpoints/beit_fashion-mnist.pth',
                      prefix='backbone.')),
    neck=dict(embed_dims=192, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[192] * 4, channels=32, num_classes=num_classes,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=192, channels=16, num_classes=num_classes, norm_cfg=norm_cfg),
    test_cfg=dict(mode='whole'))

max_iters, warmup_iters = 300, 30
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=7e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='beitlab.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
