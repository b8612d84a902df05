# VQ-KD tokenizer of BEiT v2 on ImageNet-1k, the paper's recipe (Peng et al., 2022, Sec. 3.1,
# App. Table 12; official run_vqkd_training.py): ViT-B/16 encoder, 3-layer decoder, 8192 codes
# of 32 dims, l2-normalised EMA codebook (decay 0.99), cosine distillation of a frozen teacher,
# AdamW (0.9, 0.99) wd 1e-4, lr 5e-5 x batch / 128 (batch 512 -> 2e-4), 5 warm-up epochs,
# cosine, 100 epochs. The paper's teacher is CLIP-B/16; here any beitlab ViT-B checkpoint (for
# example a fine-tuned classifier) given by `teacher_checkpoint`.
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/imagenet'
img_size, patch_size = 224, 16
imagenet_mean, imagenet_std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
model = dict(
    type='TokenizerTrainer',
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[0., 0., 0.],
                           std=[255., 255., 255.], bgr_to_rgb=True),
    tokenizer=dict(
        type='VQKD',
        encoder=dict(arch='base', img_size=img_size, patch_size=patch_size),
        decoder=dict(arch=dict(embed_dims=768, num_layers=3, num_heads=12,
                                               feedforward_channels=3072)),
        teacher=dict(arch='base', img_size=img_size, patch_size=patch_size,
                     out_type='featmap', use_abs_pos_emb=False, use_rel_pos_bias=True,
                     layer_scale_init_value=0.1),
        teacher_checkpoint='checkpoints/teacher_vit-b_in1k.pth', teacher_prefix='backbone.',
        vocab_size=8192, embed_dim=32, beta=1.0, ema_decay=0.99,
        img_mean=imagenet_mean, img_std=imagenet_std,
        teacher_mean=imagenet_mean, teacher_std=imagenet_std))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='TwoViewRandomResizedCrop', size=img_size, second_size=16, scale=(0.08, 1.0),
         interpolation='bicubic', second_interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackImageInputs'),
]
train_dataloader = dict(
    batch_size=64, num_workers=10, persistent_workers=True, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageNetStyleDataset', data_root=data_root,
                 data_prefix=dict(img_path='train'), pipeline=train_pipeline))
optim_wrapper = dict(
    type='AmpOptimWrapper', loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=5e-5 * 512 / 128, betas=(0.9, 0.99), weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=95, eta_min=1e-5, by_epoch=True, begin=5, end=100,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100)
auto_scale_lr = dict(base_batch_size=512, enable=True)
default_hooks = dict(checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=10, max_keep_ckpts=3))
