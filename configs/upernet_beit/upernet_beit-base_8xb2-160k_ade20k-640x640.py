# BEiT-B + UPerNet on ADE20K at 640 x 640 (BEiT Table 3: 53.6 mIoU with the BEiT-B
# pt22k-ft22k checkpoint; microsoft/unilm beit/semantic_segmentation
# upernet_beit_base_12_640_slide_160k_ade20k.py): 160k iterations, batch 16 (8 GPUs x 2),
# AdamW lr 3e-5, weight decay 0.05, layer decay 0.9, linear warmup 1500 iterations then
# poly decay, drop path 0.1, per-layer relative position bias interpolated 14x14 -> 40x40,
# sliding-window test (640 crops, stride 426).
# A checkpoint from self-supervised pre-training only (no intermediate fine-tuning) uses the
# official *_pt recipe instead: lr 7e-4, layer_decay_rate 0.65 (the paper's ADE20K setting).
#   python tools/model_converters/convert.py beit_base_patch16_224_pt22k_ft22k.pth \
#       checkpoints/beit-base_pt22k-ft22k_beitlab.pth --from official --to beitlab
#   python tools/train.py configs/upernet_beit/upernet_beit-base_8xb2-160k_ade20k-640x640.py
# Whole-image test instead of sliding windows: --cfg-options model.test_cfg.mode=whole
_base_ = [
    '../_base_/mmseg_runtime.py', '../_base_/models/upernet_beit.py',
    '../_base_/datasets/ade20k_640x640_seg.py'
]
crop_size = (640, 640)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='base',
        # pt22k-ft22k files are mean-pooling classifiers (official --use_mean_pooling):
        # fc_norm and no final norm; the final norm used on the last level starts at its
        # initialisation (with a pre-training-only checkpoint these match nothing)
        init_cfg=dict(type='BEiTPretrained',
                      checkpoint='checkpoints/beit-base_pt22k-ft22k_beitlab.pth',
                      prefix='backbone.',
                      allow_missing=['norm.*'], allow_unexpected=['fc_norm.*'])))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='beitlab.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# 8 GPUs x 2 images = batch 16
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
