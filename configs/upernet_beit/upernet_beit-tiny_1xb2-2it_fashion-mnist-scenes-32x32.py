# Tiny variant of upernet_beit-fmnist_1xb8-300it_fashion-mnist-scenes-48x48.py for tests:
# same model layout (abs pos embed + per-layer relative position bias, 4 px patches, UPerNet +
# FCN auxiliary head, layer decay), a 4-layer 64-dim BEiTViT on 32 x 32 scenes, 2 iterations
# then validation. Make the data with
#   python tools/dataset_converters/fashion_mnist_scenes_seg.py --out DIR --size 32 \
#       --min-item-size 12 --max-item-size 20 --num-train 4 --num-val 4
# and pass --cfg-options train_dataloader.dataset.data_root=DIR ... (tests do).
_base_ = [
    '../_base_/mmseg_runtime.py', '../_base_/models/upernet_beit.py',
    '../_base_/datasets/fashion-mnist-scenes_seg.py'
]
img_size = 32
num_classes = 11
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(mean=[72.94] * 3, std=[90.02] * 3, size=(img_size, img_size),
                           test_cfg=dict(size_divisor=4)),
    backbone=dict(
        arch=dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128),
        img_size=img_size,
        patch_size=4,
        out_indices=(0, 1, 2, 3),
        use_abs_pos_emb=True,
        use_rel_pos_bias=True,
        layer_scale_init_value=0.1,
        drop_path_rate=0.1),
    neck=dict(embed_dims=64, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[64] * 4, channels=16, pool_scales=(1, 2), num_classes=num_classes,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=64, channels=8, num_classes=num_classes, norm_cfg=norm_cfg),
    test_cfg=dict(mode='whole'))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=7e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='beitlab.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1, end=2),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False)
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
