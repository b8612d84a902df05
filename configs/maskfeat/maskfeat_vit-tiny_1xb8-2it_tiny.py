# Tiny MaskFeat for tests: 2-layer 64-dim ViT, HOG of 4 px cells (27 values / patch), 2 iterations.
_base_ = ['../_base_/default_runtime.py', '../_base_/mim-variants_tiny.py']

model = dict(
    type='MaskFeat',
    target_generator=dict(type='HOGTarget', patch_size=4, cell_size=4, nbins=9,
                          gaussian_window=4),
    head=dict(type='PatchRegressionHead', in_channels=64, out_channels=27, loss='l2'))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=2, by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
