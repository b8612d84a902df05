# PeCo tokenizer on ImageNet-1k, close to the paper's recipe (Dong et al., 2023, Sec. 3.2 and
# 4.1): 8192 codes, 16x downsampling of 224 px images (14 x 14 tokens, one per ViT-B/16 patch),
# reconstruction + codebook + commitment + perceptual loss (features of a frozen network at
# several depths, weight 1). The paper's perceptual network is a VGG / self-supervised ResNet
# and it adds an adversarial loss; here the network is any beitlab backbone checkpoint
# (`perceptual_loss.checkpoint`) and there is no adversarial term.
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/imagenet'
vocab_size = 8192
model = dict(
    type='TokenizerTrainer',
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[0., 0., 0.],
                           std=[255., 255., 255.], bgr_to_rgb=True),
    tokenizer=dict(
        type='PerceptualDVAE', vocab_size=vocab_size, downsample=16, in_channels=3,
        hidden_channels=128, embed_dim=256, num_res_blocks=2, beta=0.25,
        quantizer=dict(ema_decay=0.99, restart_unused_after=200),
        perceptual_loss=dict(  # a PerceptualLoss (the default type)
            network=dict(arch='base', img_size=224, patch_size=16,
                         out_type='featmap', out_indices=(2, 5, 8, 11), use_abs_pos_emb=False,
                         use_rel_pos_bias=True, layer_scale_init_value=0.1),
            checkpoint='checkpoints/perceptual_vit-b_in1k.pth', prefix='backbone.',
            input_mean=(0.485, 0.456, 0.406), input_std=(0.229, 0.224, 0.225))))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='TwoViewRandomResizedCrop', size=224, second_size=16, scale=(0.08, 1.0),
         interpolation='bicubic', second_interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackImageInputs'),
]
train_dataloader = dict(
    batch_size=64, num_workers=10, persistent_workers=True, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageNetStyleDataset', data_root=data_root,
                 data_prefix=dict(img_path='train'), pipeline=train_pipeline))
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic',
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.99), weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=95, eta_min=1e-5, by_epoch=True, begin=5, end=100,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100)
auto_scale_lr = dict(base_batch_size=512, enable=True)
default_hooks = dict(checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=10, max_keep_ckpts=3))
