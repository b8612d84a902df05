# Tiny VQ-KD for tests: 1-layer 32-dim encoder and decoder, 32 codes, a randomly initialised
# 2-layer teacher (no checkpoint), 2 iterations on any image folder.
_base_ = ['../_base_/default_runtime.py']

data_root = 'tests/data/tiny_images'
model = dict(
    type='TokenizerTrainer',
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[0., 0., 0.],
                           std=[255., 255., 255.], bgr_to_rgb=True),
    tokenizer=dict(
        type='VQKD',
        encoder=dict(arch=dict(embed_dims=32, num_layers=1, num_heads=2,
                                               feedforward_channels=64),
                     img_size=32, patch_size=4),
        teacher=dict(arch=dict(embed_dims=64, num_layers=2, num_heads=2,
                                               feedforward_channels=128),
                     img_size=32, patch_size=4, out_type='featmap'),
        teacher_checkpoint=None, vocab_size=32, embed_dim=8))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='TwoViewRandomResizedCrop', size=32, second_size=32),
    dict(type='PackImageInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='UnlabeledImageFolder', data_root=data_root,
                 data_prefix=dict(img_path=''), pipeline=train_pipeline))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', by_epoch=False, interval=2, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
