# ImageNet-style folder for tokenizer training at the official tokenizer-view size:
# random 112 px crops for training, resize 128 + centre crop 112 for validation.
# Layout: data/imagenet/{train,val}/<class>/*.JPEG (or meta/{train,val}.txt lists).
data_root = 'data/imagenet'

train_pipeline = [
    dict(type='LoadImageChecked', color_type='color', skip_corrupt=True),
    dict(type='RandomResizedCrop', size=112, scale=(0.08, 1.0), interpolation='bicubic'),
    dict(type='mmcv.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackImageInputs'),
]
test_pipeline = [
    dict(type='LoadImageChecked', color_type='color'),
    dict(type='ResizeEdge', scale=128, interpolation='bicubic'),
    dict(type='mmcv.CenterCrop', crop_size=112),
    dict(type='PackImageInputs'),
]

train_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='UnlabeledImageFolder', data_root=data_root,
                 data_prefix=dict(img_path='train'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='UnlabeledImageFolder', data_root=data_root,
                 data_prefix=dict(img_path='val'), indices=10000, pipeline=test_pipeline))
test_dataloader = val_dataloader
