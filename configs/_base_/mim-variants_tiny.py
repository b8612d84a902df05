# Tiny runtime shared by the variants' tiny configs (tests, smoke runs): a 2-layer 64-dim
# ViT on 32 px images (4 px patches, 8 x 8 grid), batch 8, 2 iterations, no data download:
# point `data_root` (default tests/data/tiny_images) at any folder of images.
data_root = 'tests/data/tiny_images'
img_size, patch_size = 32, 4
grid = img_size // patch_size

model = dict(
    backbone=dict(
        type='BEiTViT', arch=dict(embed_dims=64, num_layers=2, num_heads=2,
                                  feedforward_channels=128),
        img_size=img_size, patch_size=patch_size, out_type='raw', use_abs_pos_emb=True,
        use_shared_rel_pos_bias=True, layer_scale_init_value=0.1),
    data_preprocessor=dict(type='TwoViewDataPreprocessor'))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='TwoViewRandomResizedCrop', size=img_size, second_size=img_size),
    dict(type='GenerateMask',
         mask_generator=dict(type='BlockwiseMaskGenerator', input_size=grid,
                             num_masking_patches=24, min_num_patches=4)),
    dict(type='PackTwoViewInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='UnlabeledImageFolder', data_root=data_root,
                 data_prefix=dict(img_path=''), pipeline=train_pipeline))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                     clip_grad=dict(max_norm=3.0))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
# (default_hooks and log_processor are set by each variant config: default_runtime.py owns them)
