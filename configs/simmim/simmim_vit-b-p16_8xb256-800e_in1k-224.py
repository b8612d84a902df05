# SimMIM ViT-B/16 pre-training on ImageNet-1k, the paper's recipe (Xie et al., 2022, Sec. 4.1,
# App. and official simmim_pretrain__vit_base__img224__800ep.yaml): 224 px, random masking of
# 32 px squares at ratio 0.6, one linear layer predicting raw pixels, l1 on masked pixels,
# AdamW (0.9, 0.999) wd 0.05, base lr 1e-4 x batch / 512 at batch 2048, 20 warm-up epochs,
# cosine, 800 epochs, layer scale 0.1, shared relative position bias, drop path 0.1,
# RandomResizedCrop (0.67, 1) with ratio (3/4, 4/3) + flip.
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/imagenet'
img_size, patch_size = 224, 16
model = dict(
    type='SimMIM',
    backbone=dict(type='BEiTViT', arch='base', img_size=img_size, patch_size=patch_size,
                  out_type='raw', use_abs_pos_emb=False, use_shared_rel_pos_bias=True,
                  layer_scale_init_value=0.1, drop_path_rate=0.1),
    target_generator=dict(type='PixelTarget', patch_size=patch_size, norm_pix=False),
    head=dict(type='PatchRegressionHead', in_channels=768, out_channels=16 * 16 * 3, loss='l1'),
    # the 16 px second view only fills the two-view MIM data contract; SimMIM ignores it
    data_preprocessor=dict(type='TwoViewDataPreprocessor'))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='TwoViewRandomResizedCrop', size=img_size, second_size=16, scale=(0.67, 1.0),
         ratio=(3. / 4., 4. / 3.), interpolation='bicubic', second_interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='GenerateMask', mask_generator=dict(
        type='SimMIMMaskGenerator', img_size=img_size, mask_patch_size=32,
        model_patch_size=patch_size, mask_ratio=0.6)),
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
    optimizer=dict(type='AdamW', lr=1e-4 * 2048 / 512, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    # mmengine's default constructor: no decay on norms, parameters named `bias` and the
    # keys below; the 1-D q_bias / v_bias are decayed (NoDecayOptimWrapperConstructor,
    # the BEiT configs' rule, would exempt them).
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.,
                       custom_keys={'mask_token': dict(decay_mult=0.),
                                    'cls_token': dict(decay_mult=0.),
                                    'relative_position_bias_table': dict(decay_mult=0.),
                                    'gamma_1': dict(decay_mult=0.),
                                    'gamma_2': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=780, eta_min=1e-5 * 2048 / 512, by_epoch=True,
         begin=20, end=800, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=800)
auto_scale_lr = dict(base_batch_size=2048, enable=True)
default_hooks = dict(checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=20, max_keep_ckpts=3))
