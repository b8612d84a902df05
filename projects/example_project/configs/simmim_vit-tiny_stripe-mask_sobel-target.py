# The example project: beitlab's stock BEiTViT backbone and SimMIM masked regression, with the
# project's own mask generator (StripeMaskGenerator) and target (SobelEdgeTarget), loaded
# through custom_imports. Run from the repository root:
#   PYTHONPATH=. python tools/train.py \
#       projects/example_project/configs/simmim_vit-tiny_stripe-mask_sobel-target.py \
#       --cfg-options train_dataloader.dataset.data_root=data/fashion_mnist/train
_base_ = ['../../../configs/_base_/default_runtime.py']

custom_imports = dict(imports=['projects.example_project.models.stripe_mask',
                               'projects.example_project.models.sobel_target'],
                      allow_failed_imports=False)

img_size, patch_size = 32, 4
grid = img_size // patch_size
model = dict(
    type='SimMIM',
    backbone=dict(type='BEiTViT',
                  arch=dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128),
                  img_size=img_size, patch_size=patch_size, out_type='raw'),
    target_generator=dict(type='SobelEdgeTarget', patch_size=patch_size),
    head=dict(type='PatchRegressionHead', in_channels=64, out_channels=patch_size ** 2,
              loss='l1'),
    data_preprocessor=dict(type='TwoViewDataPreprocessor'))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='TwoViewRandomResizedCrop', size=img_size, second_size=img_size),
    dict(type='GenerateMask',
         mask_generator=dict(type='StripeMaskGenerator', input_size=grid, num_stripes=3)),
    dict(type='PackTwoViewInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='UnlabeledImageFolder', data_root='data/fashion_mnist/train',
                 data_prefix=dict(img_path=''), pipeline=train_pipeline))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=200)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=200, by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
