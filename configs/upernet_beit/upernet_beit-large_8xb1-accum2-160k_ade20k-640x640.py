# BEiT-L + UPerNet on ADE20K at 640 x 640 (BEiT Table 3: 57.0 mIoU with the BEiT-L
# pt22k-ft22k checkpoint; microsoft/unilm beit/semantic_segmentation
# upernet_beit_large_24_640_slide_160k_ade20k.py): blocks 7, 11, 15, 23, 160k updates of
# batch 16 (8 GPUs x 1 image x 2 accumulated steps, i.e. 320k data iterations), AdamW lr 2e-5,
# layer decay 0.95, warmup 3000 iterations, drop path 0.2, layer scale 1e-6, mixed precision on GPUs.
#   python tools/train.py configs/upernet_beit/upernet_beit-large_8xb1-accum2-160k_ade20k-640x640.py --amp
_base_ = [
    '../_base_/mmseg_runtime.py', '../_base_/models/upernet_beit.py',
    '../_base_/datasets/ade20k_640x640_seg.py'
]
crop_size = (640, 640)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='large',
        out_indices=(7, 11, 15, 23),
        layer_scale_init_value=1e-6,
        drop_path_rate=0.2,
        # pt22k-ft22k files are mean-pooling classifiers (official --use_mean_pooling):
        # fc_norm and no final norm; the final norm used on the last level starts at its
        # initialisation (with a pre-training-only checkpoint these match nothing)
        init_cfg=dict(type='BEiTPretrained',
                      checkpoint='checkpoints/beit-large_pt22k-ft22k_beitlab.pth',
                      prefix='backbone.',
                      allow_missing=['norm.*'], allow_unexpected=['fc_norm.*'])),
    neck=dict(embed_dims=1024),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024], channels=1024),
    auxiliary_head=dict(in_channels=1024))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='beitlab.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.95),
    accumulative_counts=2)
# schedulers step every data iteration, as the official 320k-iteration schedule with
# warmup_iters=3000: 320k iterations = 160k optimizer updates
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=3000),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=3000, end=320000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=320000, val_interval=32000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
train_dataloader = dict(batch_size=1)
default_hooks = dict(checkpoint=dict(interval=32000))
auto_scale_lr = dict(enable=False, base_batch_size=16)
