# Linear probe of a BEiT-B/16: the whole backbone is frozen (frozen_stages = L, which also
# freezes fc_norm, so the pooled feature is a plain LayerNorm of the mean patch token) and only
# a BatchNorm-free linear head on it is trained, without Mixup/CutMix or label smoothing.
# The BEiT paper probes intermediate layers (Sec. 3.1); this config probes the last one.
# Schedule (90 epochs, AdamW lr 4e-3 at batch 1024, 10 warm-up epochs, no weight decay) is a
# common linear-probe default, not a value taken from the paper.
_base_ = ['./beit_vit-b-p16_8xb128-lrd0.65-100e_in1k.py']

model = dict(
    backbone=dict(frozen_stages=12, drop_path_rate=0.0),
    head=dict(dropout_rate=0.0, loss=dict(type='SoftTargetCrossEntropyLoss', label_smoothing=0.0)),
    data_preprocessor=dict(mixup=None))
train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='RandomResizedCrop', size=224, scale=(0.08, 1.0), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackImageInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
max_epochs, warmup_epochs = 90, 10
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-3, weight_decay=0.0, betas=(0.9, 0.999)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
