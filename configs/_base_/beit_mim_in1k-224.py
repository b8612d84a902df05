# BEiT masked-image-modeling recipe on an ImageNet-style folder (Bao et al., 2021, Sec. 2.5,
# App. B; official `run_beit_pretraining.py` with the README's ImageNet-1k command). The model
# architecture (backbone arch, layer scale, head width) is set by configs/beit/mim_vit-*.py.
data_root = 'data/imagenet'
img_size, patch_size = 224, 16
grid = img_size // patch_size     # 14 x 14 patches = 196

model = dict(
    type='BEiT',
    backbone=dict(
        type='BEiTViT',
        img_size=img_size, patch_size=patch_size,
        out_type='raw',
        # Official pre-training: --abs_pos_emb off, --rel_pos_bias on (one table shared by
        # every layer).
        use_abs_pos_emb=False,
        use_shared_rel_pos_bias=True,
        use_rel_pos_bias=False,
        drop_path_rate=0.1,
        final_norm=True),
    # DALL-E's 8192-token encoder on the 112 px view (-> 14 x 14 tokens). Weights are not
    # shipped: convert OpenAI's encoder.pkl with tools/model_converters/dalle_to_beitlab.py
    # into `checkpoint` (its docstring has the commands), or pre-train with beitlab's own
    # 8192-code dVAE instead (configs/beit/mim_vit-b_dvae-8192.py). A missing file stops
    # training with a message that gives these commands.
    target_generator=dict(
        type='VisualTokenTarget',
        tokenizer=dict(type='DALLEEncoder', vocab_size=8192),
        checkpoint='checkpoints/dalle_encoder.pth'),
    head=dict(type='MIMHead', vocab_size=8192),
    # --imagenet_default_mean_and_std for ImageNet-1k; the tokenizer view stays in [0, 1]
    # (the DALL-E encoder applies its own map_pixels).
    data_preprocessor=dict(
        type='TwoViewDataPreprocessor',
        mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
        tok_mean=(0., 0., 0.), tok_std=(255., 255., 255.), to_rgb=True))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='TwoViewRandomResizedCrop', size=img_size, second_size=img_size // 2,
         scale=(0.08, 1.0), interpolation='bicubic', second_interpolation='lanczos'),
    dict(type='GenerateMask',
         mask_generator=dict(type='BlockwiseMaskGenerator', input_size=grid,
                             num_masking_patches=75, min_num_patches=16, max_num_patches=None,
                             min_aspect=0.3, max_aspect=None)),
    dict(type='PackTwoViewInputs'),
]
train_dataloader = dict(
    batch_size=256, num_workers=10, persistent_workers=True, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetStyleDataset', data_root=data_root, ann_file='',
                 data_prefix=dict(img_path='train'), pipeline=train_pipeline))

# AdamW (0.9, 0.999), lr 1.5e-3 for a total batch of 2048 (scaled linearly to the actual
# batch by auto_scale_lr), weight decay 0.05, gradient clipping 3.0.
# No weight decay (NoDecayOptimWrapperConstructor, the rule in
# beitlab/engine/optimizers/no_decay_constructor.py), as in official BEiT, on 1-D parameters
# (norms, q/v biases, layer-scale gammas), biases, pos_embed and cls_token; also (a beitlab
# choice) on mask_token and the relative position bias tables, which official BEiT decays.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    clip_grad=dict(max_norm=3.0),
    constructor='NoDecayOptimWrapperConstructor')
auto_scale_lr = dict(enable=True, base_batch_size=2048)

# 10 warm-up epochs from 1e-6 (official --warmup_lr), then cosine to 1e-5 at epoch 800,
# both updated every iteration like official BEiT.
max_epochs, warmup_epochs = 800, 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 1.5e-3, end_factor=1.0, by_epoch=True,
         begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, T_max=max_epochs - warmup_epochs,
         by_epoch=True, begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
