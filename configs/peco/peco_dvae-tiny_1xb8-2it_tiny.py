# Tiny PeCo tokenizer for tests: a 16-code dVAE with a perceptual loss from a randomly
# initialised 2-layer ViT (no checkpoint), 2 iterations on any image folder.
_base_ = ['../_base_/default_runtime.py']

data_root = 'tests/data/tiny_images'
model = dict(
    type='TokenizerTrainer',
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[0., 0., 0.],
                           std=[255., 255., 255.], bgr_to_rgb=True),
    tokenizer=dict(
        type='PerceptualDVAE', vocab_size=16, downsample=4, hidden_channels=8, embed_dim=8,
        perceptual_loss=dict(  # a PerceptualLoss (the default type)
            network=dict(arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                                   feedforward_channels=64),
                         img_size=32, patch_size=4, out_type='featmap', out_indices=(0, 1)),
            checkpoint=None)))

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
