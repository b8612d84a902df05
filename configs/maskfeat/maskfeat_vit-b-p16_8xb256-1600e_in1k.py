# MaskFeat ViT-B/16 pre-training on ImageNet-1k, the paper's recipe (Wei et al., 2022,
# Sec. 4.1 and App. A.1): HOG of 8 px cells, 9 bins, 16 px Gaussian window (2 x 2 x 9 x 3 =
# 108 values per 16 px patch), block-wise masking at 40 %, linear head, l2 on masked patches;
# AdamW (0.9, 0.999) wd 0.05, lr 2e-4 x batch / 256 at batch 2048, 30 warm-up epochs, cosine,
# 1600 epochs, drop path 0.1, RandomResizedCrop (0.5, 1) + flip.
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/imagenet'
img_size, patch_size = 224, 16
model = dict(
    type='MaskFeat',
    backbone=dict(type='BEiTViT', arch='base', img_size=img_size, patch_size=patch_size,
                  out_type='raw', use_abs_pos_emb=True, drop_path_rate=0.1),
    target_generator=dict(type='HOGTarget', patch_size=patch_size, cell_size=8, nbins=9,
                          gaussian_window=16),
    head=dict(type='PatchRegressionHead', in_channels=768, out_channels=108, loss='l2'),
    # the 16 px second view only fills the two-view MIM data contract; MaskFeat ignores it
    data_preprocessor=dict(type='TwoViewDataPreprocessor'))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='TwoViewRandomResizedCrop', size=img_size, second_size=16, scale=(0.5, 1.0),
         interpolation='bicubic', second_interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='GenerateMask', mask_generator=dict(
        type='BlockwiseMaskGenerator', input_size=14, num_masking_patches=78,
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
    optimizer=dict(type='AdamW', lr=2e-4 * 2048 / 256, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=0.02),
    # mmengine's default constructor: no decay on norms, parameters named `bias` and the
    # keys below; the 1-D q_bias / v_bias are decayed (NoDecayOptimWrapperConstructor,
    # the BEiT configs' rule, would exempt them).
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.,
                       custom_keys={'pos_embed': dict(decay_mult=0.),
                                    'mask_token': dict(decay_mult=0.),
                                    'cls_token': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=30,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=1570, eta_min=1e-6, by_epoch=True, begin=30,
         end=1600, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1600)
auto_scale_lr = dict(base_batch_size=2048, enable=True)
default_hooks = dict(checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=20, max_keep_ckpts=3))
