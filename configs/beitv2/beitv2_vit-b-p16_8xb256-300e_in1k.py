# BEiT v2 ViT-B/16 pre-training on ImageNet-1k, the paper's recipe (Peng et al., 2022, Sec. 3.1
# and App. Table 13): 224 px for the ViT and the tokenizer, block-wise masking of 75 / 196
# patches, VQ-KD targets (8192 codes; configs/vqkd/vqkd_vit-b-p16_8xb64-100e_in1k.py),
# patch aggregation of layer 9's patches with the CLS of layer 12 through 2 blocks,
# AdamW (0.9, 0.98) wd 0.05, lr 1.5e-3 at batch 2048, 10 warm-up epochs, cosine, 300 epochs,
# layer scale 0.1, shared relative position bias, drop path 0.1.
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/imagenet'
img_size, patch_size = 224, 16
model = dict(
    type='BEiTv2',
    backbone=dict(type='BEiTViT', arch='base', img_size=img_size, patch_size=patch_size,
                  out_type='raw', out_indices=(8, 11), use_abs_pos_emb=False,
                  use_shared_rel_pos_bias=True, layer_scale_init_value=0.1,
                  drop_path_rate=0.1),
    target_generator=dict(
        type='VisualTokenTarget',
        tokenizer=dict(
            type='VQKD',
            encoder=dict(arch='base', img_size=img_size, patch_size=patch_size),
            decoder=dict(arch=dict(embed_dims=768, num_layers=3, num_heads=12,
                                                   feedforward_channels=3072)),
            teacher=None, teacher_dims=768, vocab_size=8192, embed_dim=32,
            img_mean=(0.485, 0.456, 0.406), img_std=(0.229, 0.224, 0.225)),
        checkpoint='checkpoints/vqkd_in1k.pth'),
    neck=dict(type='PatchAggregationNeck', embed_dims=768, num_heads=12,
              feedforward_channels=3072, num_layers=2, layer_scale_init_value=0.1),
    head=dict(type='MIMHead', in_channels=768, vocab_size=8192),
    data_preprocessor=dict(type='TwoViewDataPreprocessor'))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='TwoViewRandomResizedCrop', size=img_size, second_size=img_size,
         scale=(0.08, 1.0), interpolation='bicubic', second_interpolation='bicubic'),
    dict(type='GenerateMask', mask_generator=dict(
        type='BlockwiseMaskGenerator', input_size=14, num_masking_patches=75,
        min_num_patches=16)),
    dict(type='PackTwoViewInputs'),
]
train_dataloader = dict(
    batch_size=256, num_workers=10, persistent_workers=True, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetStyleDataset', data_root=data_root,
                 data_prefix=dict(img_path='train'), pipeline=train_pipeline))

optim_wrapper = dict(
    type='AmpOptimWrapper', loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1.5e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.05),
    clip_grad=dict(max_norm=3.0),
    # no weight decay on 1-D parameters, biases, tokens, position embeddings and bias tables
    constructor='NoDecayOptimWrapperConstructor')
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=290, eta_min=1e-5, by_epoch=True, begin=10, end=300,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=300)
auto_scale_lr = dict(base_batch_size=2048, enable=True)
default_hooks = dict(checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=20, max_keep_ckpts=3))
