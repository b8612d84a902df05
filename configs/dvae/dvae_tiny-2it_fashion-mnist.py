# Tiny variant of dvae_fashion-mnist.py for tests: 2 iterations of a 16-code dVAE.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/fashion-mnist_32px_tokenizer.py',
]

vocab_size = 16
model = dict(
    type='TokenizerTrainer',
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[0., 0., 0.],
                           std=[255., 255., 255.], bgr_to_rgb=True),
    tokenizer=dict(type='DVAE', vocab_size=vocab_size, downsample=4, in_channels=3,
                   hidden_channels=8, embed_dim=8, num_res_blocks=1, beta=0.25,
                   quantizer=dict(restart_unused_after=1)))

train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_evaluator = dict(type='ReconstructionMetric', vocab_size=vocab_size)
test_evaluator = val_evaluator
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))

train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False)
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                      dataset=dict(indices=8))
test_dataloader = val_dataloader

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', by_epoch=False, interval=2))
custom_hooks = [
    dict(type='ReconstructionVisHook', num_images=4),
    dict(type='CorruptImageReportHook'),
]
log_processor = dict(window_size=1, by_epoch=False)
