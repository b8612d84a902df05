# MAE ViT-B/16 pre-training on ImageNet-1k, the paper's recipe (He et al., 2022, Sec. 4 and
# App. A.1, Table 8): mask ratio 0.75, decoder 8 blocks x 512 dims x 16 heads, normalised
# pixel targets, AdamW (0.9, 0.95), wd 0.05, base lr 1.5e-4 x batch / 256 with batch 4096,
# 40 warm-up epochs, cosine, 1600 epochs, RandomResizedCrop (0.2, 1) + flip only.
# Difference: BEiTViT's learnable absolute position embedding instead of fixed sin-cos.
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/imagenet'
img_size, patch_size = 224, 16
model = dict(
    type='MAE',
    mask_ratio=0.75,
    backbone=dict(type='BEiTViT', arch='base', img_size=img_size, patch_size=patch_size,
                  out_type='raw', use_abs_pos_emb=True, layer_scale_init_value=0.0),
    target_generator=dict(type='PixelTarget', patch_size=patch_size, norm_pix=True),
    head=dict(type='MAEDecoder', grid=(14, 14), patch_size=patch_size, embed_dims=768,
              decoder_embed_dims=512, decoder_depth=8, decoder_num_heads=16),
    # the 16 px second view only fills the two-view MIM data contract; MAE ignores it
    data_preprocessor=dict(type='TwoViewDataPreprocessor'))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='TwoViewRandomResizedCrop', size=img_size, second_size=16, scale=(0.2, 1.0),
         interpolation='bicubic', second_interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='GenerateMask', mask_generator=dict(type='RandomMaskGenerator', input_size=14,
                                                  mask_ratio=0.75)),
    dict(type='PackTwoViewInputs'),
]
train_dataloader = dict(
    batch_size=512, num_workers=10, persistent_workers=True, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetStyleDataset', data_root=data_root,
                 data_prefix=dict(img_path='train'), pipeline=train_pipeline))

optim_wrapper = dict(
    type='AmpOptimWrapper', loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1.5e-4 * 4096 / 256, betas=(0.9, 0.95), weight_decay=0.05),
    # mmengine's default constructor: no decay on norms, parameters named `bias` and the
    # keys below; the 1-D q_bias / v_bias are decayed (NoDecayOptimWrapperConstructor,
    # the BEiT configs' rule, would exempt them).
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.,
                       custom_keys={'pos_embed': dict(decay_mult=0.),
                                    'mask_token': dict(decay_mult=0.),
                                    'cls_token': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=1560, by_epoch=True, begin=40, end=1600,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1600)
auto_scale_lr = dict(base_batch_size=4096, enable=True)
default_hooks = dict(checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=20, max_keep_ckpts=3))
