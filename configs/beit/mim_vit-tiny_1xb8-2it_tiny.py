# Tiny variant of configs/beit/mim_vit-b.py for tests and smoke runs: the same pipeline steps
# (a 32 px tokenizer view, 24 of the 64 patches masked) and optimiser rules, a 2-layer 64-dim
# ViT on 32 px images (4 px patches, 8 x 8 grid), a randomly initialised 32-token dVAE, no lr
# schedule, 2 iterations. `data_root` is an ImageNet-style root
# (train/<class>/*.png).
_base_ = ['../_base_/default_runtime.py', '../_base_/beit_mim_in1k-224.py']

data_root = 'tests/data/tiny_images'
img_size, patch_size = 32, 4
grid = img_size // patch_size

model = dict(
    backbone=dict(arch=dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128),
                  img_size=img_size, patch_size=patch_size, layer_scale_init_value=0.1,
                  drop_path_rate=0.0),
    target_generator=dict(
        _delete_=True, type='VisualTokenTarget',
        tokenizer=dict(type='DVAE', vocab_size=32, downsample=4, hidden_channels=16,
                       embed_dim=16)),
    head=dict(in_channels=64, vocab_size=32))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='TwoViewRandomResizedCrop', size=img_size, second_size=img_size,
         interpolation='bicubic', second_interpolation='lanczos'),
    dict(type='GenerateMask',
         mask_generator=dict(type='BlockwiseMaskGenerator', input_size=grid,
                             num_masking_patches=24, min_num_patches=4)),
    dict(type='PackTwoViewInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
auto_scale_lr = dict(enable=False)
param_scheduler = []
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=1, by_epoch=False, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
