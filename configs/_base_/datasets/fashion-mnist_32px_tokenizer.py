# Fashion-MNIST for tokenizer training: 28 px images zero-padded to 32 px (the black
# background), 3 channels (gray replicated) like every beitlab image view.
# Create the data with: python tools/dataset_converters/fashion_mnist.py --out data/fashion_mnist
data_root = 'data/fashion_mnist'

train_pipeline = [
    dict(type='LoadImageChecked', color_type='color'),
    dict(type='mmcv.Pad', size=(32, 32), pad_val=0),
    dict(type='mmcv.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackImageInputs'),
]
test_pipeline = [
    dict(type='LoadImageChecked', color_type='color'),
    dict(type='mmcv.Pad', size=(32, 32), pad_val=0),
    dict(type='PackImageInputs'),
]

train_dataloader = dict(
    batch_size=128, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageNetStyleDataset', data_root=data_root, ann_file='meta/train.txt',
                 data_prefix=dict(img_path='train'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=500, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageNetStyleDataset', data_root=data_root, ann_file='meta/val.txt',
                 data_prefix=dict(img_path='val'), pipeline=test_pipeline))
test_dataloader = val_dataloader
