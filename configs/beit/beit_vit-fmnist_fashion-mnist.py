# BEiT masked image modeling on real Fashion-MNIST images, the Fashion-MNIST experiment of
# docs/DESIGN.md: ViT (6 layers, 192 dims, 3 heads) on 32 px images with 4 px patches
# (8 x 8 = 64 patches), abs pos embed + shared relative position bias, layer scale 0.1;
# targets from the Phase-1 dVAE (32 px input, 4x down -> 8 x 8 tokens). Runs on 2 CPU cores.
# Data: configs/_base_/datasets/fashion-mnist_mim.py, shared with the MIM variants.
# Differences from the ImageNet recipe (configs/beit/mim_vit-b.py), for small images and a
# minutes-long run: 28 px items zero-padded to 32 px (as for the dVAE), crop scale (0.6, 1),
# 24 of 64 patches masked (the paper's 75/196 = 38 %) in blocks of >= 4 patches (the paper:
# >= 16 of 196), no drop path, lr 1e-3 at batch 64, 20 warm-up iterations, 200 iterations.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/fashion-mnist_mim.py']

img_size, patch_size = 32, 4
# Must equal the tokenizer of configs/dvae/dvae_fashion-mnist.py (tests check it).
tokenizer = dict(type='DVAE', vocab_size=512, downsample=4, in_channels=3, hidden_channels=32,
                 embed_dim=64, num_res_blocks=1, beta=0.25,
                 quantizer=dict(restart_unused_after=20))
# Fashion-MNIST statistics (0.2860, 0.3530 of 255), as the fine-tuning config.
mean, std = [72.94] * 3, [90.02] * 3

model = dict(
    type='BEiT',
    backbone=dict(
        type='BEiTViT',
        arch=dict(embed_dims=192, num_layers=6, num_heads=3, feedforward_channels=768),
        img_size=img_size, patch_size=patch_size, out_type='raw',
        use_abs_pos_emb=True, use_shared_rel_pos_bias=True, use_rel_pos_bias=False,
        layer_scale_init_value=0.1, drop_path_rate=0.0, final_norm=True),
    target_generator=dict(type='VisualTokenTarget', tokenizer=tokenizer,
                          checkpoint='checkpoints/dvae_fashion-mnist.pth'),
    head=dict(type='MIMHead', in_channels=192, vocab_size=512),
    data_preprocessor=dict(type='TwoViewDataPreprocessor', mean=mean, std=std,
                           tok_mean=(0., 0., 0.), tok_std=(255., 255., 255.), to_rgb=True))

# The fast path (beitlab/engine/fast_path.py; docs/performance.md, "Fast path"): bf16 autocast,
# fused AdamW, exactly 24 masked patches per image and the loss (backbone + head +
# cross-entropy) compiled as one function; with no C++ compiler it warns once and trains
# eagerly. The tokenizer stays fp32: bf16 gained nothing for this small dVAE (0.99-1.00x of
# the step). `--cfg-options fast_path=False` trains as written below (fp32, eager);
# `--cfg-options fast_path.compile=False` leaves one piece out.
fast_path = dict(bf16=True, fused_optimizer=True, tokenizer_bf16=False, exact_masks=True,
                 compile=True)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    clip_grad=dict(max_norm=3.0),
    constructor='NoDecayOptimWrapperConstructor')

max_iters, warmup_iters = 200, 20
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=False,
         begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-5, T_max=max_iters - warmup_iters,
         by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=50, by_epoch=False, max_keep_ckpts=4))
log_processor = dict(window_size=10, by_epoch=False)
# k-NN top-1 of the frozen CLS token (k=20, T=0.07) on 2,000 train / 1,000 val images, at
# iterations 0, 100 and 200 (about 20 s each on 2 CPU cores; docs/monitoring.md).
custom_hooks = [
    dict(type='KNNMonitorHook', interval=100, at_start=True, data_root=_base_.data_root,
         num_train=2000, num_val=1000),
]
