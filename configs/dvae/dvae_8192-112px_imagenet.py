# Real-size dVAE tokenizer: 8192 codes, 112 px tokenizer view, 8x downsampling -> 14 x 14
# tokens (the grid of a 224 px ViT with 16 px patches), trained on an ImageNet-style folder.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/imagenet_112px_tokenizer.py',
]

vocab_size = 8192
model = dict(
    type='TokenizerTrainer',
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[0., 0., 0.],
                           std=[255., 255., 255.], bgr_to_rgb=True),
    tokenizer=dict(type='DVAE', vocab_size=vocab_size, downsample=8, in_channels=3,
                   hidden_channels=256, embed_dim=256, num_res_blocks=2, beta=0.25,
                   quantizer=dict(ema_decay=0.99, restart_unused_after=200)))

max_iters = 200000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_evaluator = dict(type='ReconstructionMetric', vocab_size=vocab_size)
test_evaluator = val_evaluator

optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.99), weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=5000),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=5000, end=max_iters),
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', by_epoch=False, interval=10000, max_keep_ckpts=3))
custom_hooks = [
    dict(type='ReconstructionVisHook', num_images=32),
    dict(type='CorruptImageReportHook'),
]
log_processor = dict(window_size=50, by_epoch=False)
