# The Fashion-MNIST experiment, phase 1 (docs/DESIGN.md): a dVAE tokenizer on 32 px
# images, 4x downsampling -> 8 x 8 visual tokens (one per 4 px ViT patch), 512 codes.
# Measured: 22 min on 2 CPU cores at a load average of ~12 (val PSNR 22.1 dB, usage 1.0);
# about 4 min expected on 2 free cores (0.28 s/iter measured in a plain one-thread loop):
#   OMP_NUM_THREADS=1 python tools/train.py configs/dvae/dvae_fashion-mnist.py
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/fashion-mnist_32px_tokenizer.py',
]

vocab_size = 512
model = dict(
    type='TokenizerTrainer',
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[0., 0., 0.],
                           std=[255., 255., 255.], bgr_to_rgb=True),
    tokenizer=dict(type='DVAE', vocab_size=vocab_size, downsample=4, in_channels=3,
                   hidden_channels=32, embed_dim=64, num_res_blocks=1, beta=0.25,
                   quantizer=dict(restart_unused_after=20)))

max_iters = 700
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_evaluator = dict(type='ReconstructionMetric', vocab_size=vocab_size)
test_evaluator = val_evaluator

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=50, end=max_iters),
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', by_epoch=False, interval=350, max_keep_ckpts=1))
custom_hooks = [
    dict(type='ReconstructionVisHook', num_images=32),
    dict(type='CorruptImageReportHook'),
]
log_processor = dict(window_size=10, by_epoch=False)
