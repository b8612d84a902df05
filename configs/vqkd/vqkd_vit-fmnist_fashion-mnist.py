# VQ-KD tokenizer (BEiT v2 phase 1, Peng et al., 2022, Sec. 2.1) on real Fashion-MNIST: a
# 4-layer 128-dim ViT encoder (4 px patches -> 8 x 8 tokens, as the dVAE), a 512-code
# l2-normalised EMA codebook of 32-dim codes, a 1-layer decoder reconstructing the features
# of a frozen teacher with a cosine loss. The teacher is the Fashion-MNIST BEiT backbone
# (checkpoints/beit_fashion-mnist.pth; the paper uses CLIP, which cannot be downloaded here).
# Train: python tools/train.py configs/vqkd/vqkd_vit-fmnist_fashion-mnist.py
# then copy work_dirs/vqkd_vit-fmnist_fashion-mnist/iter_1500.pth to
# checkpoints/vqkd_fashion-mnist.pth (configs/beitv2/ read it from there).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/fashion-mnist_32px_tokenizer.py',
]

# The BEiT view's normalisation (configs/beit/beit_vit-fmnist_fashion-mnist.py), in [0, 1] units.
fmnist_mean, fmnist_std = (72.94 / 255, ) * 3, (90.02 / 255, ) * 3
vocab_size = 512
tokenizer = dict(
    type='VQKD',
    encoder=dict(
                 arch=dict(embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512),
                 img_size=32, patch_size=4, use_abs_pos_emb=True),
    decoder=dict(
                 arch=dict(embed_dims=128, num_layers=1, num_heads=4, feedforward_channels=512)),
    teacher=dict(
                 arch=dict(embed_dims=192, num_layers=6, num_heads=3, feedforward_channels=768),
                 img_size=32, patch_size=4, out_type='featmap', use_abs_pos_emb=True,
                 use_shared_rel_pos_bias=True, layer_scale_init_value=0.1),
    teacher_checkpoint='checkpoints/beit_fashion-mnist.pth', teacher_prefix='backbone.',
    vocab_size=vocab_size, embed_dim=32, beta=1.0, ema_decay=0.99,
    # dead-code restart: a beitlab addition for this small dataset (official VQ-KD
    # restarts no codes); the codebook update is the official norm-EMA rule
    quantizer=dict(restart_unused_after=50),
    img_mean=fmnist_mean, img_std=fmnist_std,
    teacher_mean=fmnist_mean, teacher_std=fmnist_std)
model = dict(
    type='TokenizerTrainer',
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[0., 0., 0.],
                           std=[255., 255., 255.], bgr_to_rgb=True),
    tokenizer=tokenizer)

max_iters = 1500
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
val_dataloader, val_cfg, val_evaluator = None, None, None     # no pixel reconstruction to score
test_dataloader, test_cfg, test_evaluator = None, None, None
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.99), weight_decay=1e-4),
                     clip_grad=dict(max_norm=3.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=75),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=75, end=max_iters),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=1))
log_processor = dict(window_size=10, by_epoch=False)
