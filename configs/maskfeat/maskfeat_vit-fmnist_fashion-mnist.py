# MaskFeat (Wei et al., 2022) on real Fashion-MNIST with the backbone and data of the BEiT
# config (configs/_base_/datasets/fashion-mnist_mim.py, configs/_base_/mim-variants_fashion-mnist.py:
# 1500 iterations); its own masking on the shared views. HOG scaled to 4 px patches: one
# 4 px cell per patch (the paper: 2 x 2 cells of 8 px per 16 px patch), 9 unsigned bins,
# a 4 px Gaussian window (the paper: one 16 px window per patch) -> 3 x 9 = 27 values per
# patch; block-wise masking of 40 % (26 / 64, the paper's ratio); linear head, l2 loss.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/fashion-mnist_mim.py',
          '../_base_/mim-variants_fashion-mnist.py']

model = dict(
    type='MaskFeat',
    target_generator=dict(type='HOGTarget', patch_size=4, cell_size=4, nbins=9,
                          gaussian_window=4),
    head=dict(type='PatchRegressionHead', in_channels=192, out_channels=27, loss='l2'))

train_pipeline = [
    *_base_.view_transforms,
    dict(type='GenerateMask', mask_generator=dict(
        type='BlockwiseMaskGenerator', input_size=8, num_masking_patches=26, min_num_patches=4)),
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
