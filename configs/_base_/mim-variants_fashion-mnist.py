# The common part of the MIM variants (MAE, SimMIM, MaskFeat, BEiT v2) on real Fashion-MNIST:
# the backbone, normalisation and optimiser of configs/beit/beit_vit-fmnist_fashion-mnist.py
# (tests check that backbone and normalisation equal BEiT's) and a longer default schedule
# (1500 iterations, 100 warm-up, where BEiT's config runs 200 / 20;
# tools/analysis_tools/compare_mim_variants.py sets the same iterations and batch for all).
# The data are BEiT's by construction: a variant config lists
#   _base_ = ['../_base_/default_runtime.py', '../_base_/datasets/fashion-mnist_mim.py',
#             '../_base_/mim-variants_fashion-mnist.py']
# and adds the algorithm (`model.type`, target, head); one that masks differently replaces
# the mask step of the shared pipeline (see the datasets file). docs/variants.md.
model = dict(
    # The docs/DESIGN.md Fashion-MNIST backbone: 6 layers, 192 dims, abs pos embed + shared rel pos bias,
    # layer scale 0.1.
    backbone=dict(
        type='BEiTViT',
        arch=dict(embed_dims=192, num_layers=6, num_heads=3, feedforward_channels=768),
        img_size=32, patch_size=4, out_type='raw',
        use_abs_pos_emb=True, use_shared_rel_pos_bias=True, use_rel_pos_bias=False,
        layer_scale_init_value=0.1, drop_path_rate=0.0, final_norm=True),
    # The second (tokenizer) view is in [0, 1]; pixel / HOG variants ignore it.
    # Fashion-MNIST statistics (0.2860, 0.3530 of 255), as the BEiT and fine-tuning configs.
    data_preprocessor=dict(type='TwoViewDataPreprocessor', mean=[72.94] * 3, std=[90.02] * 3,
                           tok_mean=(0., 0., 0.), tok_std=(255., 255., 255.), to_rgb=True))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    clip_grad=dict(max_norm=3.0),
    constructor='NoDecayOptimWrapperConstructor')

max_iters, warmup_iters = 1500, 100
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=False,
         begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-5, T_max=max_iters - warmup_iters,
         by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
# The fast path (beitlab/engine/fast_path.py; docs/performance.md, "Fast path"): bf16 autocast
# and fused AdamW for every variant, exact mask counts where it masks block-wise (BEiT v2); the
# compiled loss is BEiT's only. `--cfg-options fast_path=False` trains in fp32, eagerly.
fast_path = True
# (default_hooks and log_processor are set by each variant config: default_runtime.py owns them)
