# MAE (He et al., 2022) on real Fashion-MNIST with the backbone and data of
# configs/beit/beit_vit-fmnist_fashion-mnist.py (configs/_base_/datasets/fashion-mnist_mim.py,
# configs/_base_/mim-variants_fashion-mnist.py: 1500 iterations).
# The encoder sees the 16 visible patches of 64 (ratio 0.75, drawn by the algorithm; the
# pipeline's block mask is unused); a 2-block 128-dim decoder predicts normalised pixels.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/fashion-mnist_mim.py',
          '../_base_/mim-variants_fashion-mnist.py']

model = dict(
    type='MAE',
    mask_ratio=0.75,
    target_generator=dict(type='PixelTarget', patch_size=4, norm_pix=True),
    head=dict(type='MAEDecoder', grid=(8, 8), patch_size=4, in_channels=3, embed_dims=192,
              decoder_embed_dims=128, decoder_depth=2, decoder_num_heads=4))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=250, by_epoch=False, max_keep_ckpts=2))
log_processor = dict(window_size=25, by_epoch=False)
# k-NN top-1 of the frozen CLS token (k=20, T=0.07) on 2,000 train / 1,000 val images every
# 150 iterations and at the start (about 20 s each on 2 CPU cores; docs/monitoring.md).
custom_hooks = [
    dict(type='KNNMonitorHook', interval=150, at_start=True, data_root='data/fashion_mnist',
         num_train=2000, num_val=1000),
]
