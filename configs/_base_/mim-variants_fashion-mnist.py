# Shared by the MIM variants (MAE, SimMIM, MaskFeat, BEiT v2) on real Fashion-MNIST, so that
# they compare with configs/beit/beit_vit-fmnist_fashion-mnist.py at equal backbone, data
# pipeline, optimiser and schedule (docs/variants.md). A variant config adds the algorithm
# (`model.type`, target, head) and, when it masks differently, its own `train_pipeline`
# (re-assigned to `train_dataloader.dataset.pipeline`). Everything here matches the BEiT config.
data_root = 'data/fashion_mnist'
img_size, patch_size = 32, 4
grid = img_size // patch_size          # 8 x 8 = 64 patches
# Fashion-MNIST statistics (0.2860, 0.3530 of 255), as the BEiT and fine-tuning configs.
mean, std = [72.94] * 3, [90.02] * 3

model = dict(
    # The docs/DESIGN.md Fashion-MNIST backbone: 6 layers, 192 dims, abs pos embed + shared rel pos bias,
    # layer scale 0.1.
    backbone=dict(
        type='BEiTViT',
        arch=dict(embed_dims=192, num_layers=6, num_heads=3, feedforward_channels=768),
        img_size=img_size, patch_size=patch_size, out_type='raw',
        use_abs_pos_emb=True, use_shared_rel_pos_bias=True, use_rel_pos_bias=False,
        layer_scale_init_value=0.1, drop_path_rate=0.0, final_norm=True),
    # The second (tokenizer) view is in [0, 1]; pixel / HOG variants ignore it.
    data_preprocessor=dict(type='TwoViewDataPreprocessor', mean=mean, std=std,
                           tok_mean=(0., 0., 0.), tok_std=(255., 255., 255.), to_rgb=True))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='TwoViewRandomResizedCrop', size=img_size, second_size=img_size,
         scale=(0.5, 1.0), interpolation='bicubic', second_interpolation='lanczos'),
    # BEiT's block-wise masking of 24 / 64 patches (38 %, the paper's 75 / 196).
    dict(type='GenerateMask',
         mask_generator=dict(type='BlockwiseMaskGenerator', input_size=grid,
                             num_masking_patches=24, min_num_patches=4)),
    dict(type='PackTwoViewInputs'),
]
train_dataloader = dict(
    batch_size=128, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetStyleDataset', data_root=data_root, ann_file='meta/train.txt',
                 data_prefix=dict(img_path='train'), pipeline=train_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    clip_grad=dict(max_norm=3.0),
    constructor='NoDecayOptimWrapperConstructor')

max_iters, warmup_iters = 1500, 100
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=False,
         begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-5, T_max=max_iters - warmup_iters,
         by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
# (default_hooks and log_processor are set by each variant config: default_runtime.py owns them)
