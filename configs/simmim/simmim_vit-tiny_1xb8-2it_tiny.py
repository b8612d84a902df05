# Tiny SimMIM for tests: 2-layer 64-dim ViT, 8 px mask squares at ratio 0.6, 2 iterations.
_base_ = ['../_base_/default_runtime.py', '../_base_/mim-variants_tiny.py']

model = dict(
    type='SimMIM',
    target_generator=dict(type='PixelTarget', patch_size=4, norm_pix=False),
    head=dict(type='PatchRegressionHead', in_channels=64, out_channels=4 * 4 * 3, loss='l1'))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='TwoViewRandomResizedCrop', size=32, second_size=32),
    dict(type='GenerateMask', mask_generator=dict(
        type='SimMIMMaskGenerator', img_size=32, mask_patch_size=8, model_patch_size=4,
        mask_ratio=0.6)),
    dict(type='PackTwoViewInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=2, by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
