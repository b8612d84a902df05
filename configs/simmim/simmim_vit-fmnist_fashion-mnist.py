# SimMIM (Xie et al., 2022) on real Fashion-MNIST with the backbone and data of the BEiT config
# (configs/_base_/datasets/fashion-mnist_mim.py, configs/_base_/mim-variants_fashion-mnist.py:
# 1500 iterations); its own masking on the shared views, scaled to 32 px images: 8 px mask
# squares (2 x 2 patches; the paper's 32 px squares are 2 x 2 Swin / ViT-16 patches) at
# ratio 0.6; a linear head regresses the raw (normalised-image) pixels, l1 on masked ones.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/fashion-mnist_mim.py',
          '../_base_/mim-variants_fashion-mnist.py']

model = dict(
    type='SimMIM',
    target_generator=dict(type='PixelTarget', patch_size=4, norm_pix=False),
    head=dict(type='PatchRegressionHead', in_channels=192, out_channels=4 * 4 * 3, loss='l1'))

train_pipeline = [
    *_base_.view_transforms,
    dict(type='GenerateMask', mask_generator=dict(
        type='SimMIMMaskGenerator', img_size=32, mask_patch_size=8, model_patch_size=4,
        mask_ratio=0.6)),
    dict(type='PackTwoViewInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
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
