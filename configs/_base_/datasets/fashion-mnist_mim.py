# Fashion-MNIST for masked image modeling: the data of BEiT
# (configs/beit/beit_vit-fmnist_fashion-mnist.py) and of the MIM variants compared with it
# (configs/{mae,simmim,maskfeat,beitv2}/*_fashion-mnist.py, docs/variants.md). Two views of one
# crop, the ViT's and the tokenizer's, both 32 px, so that patch (i, j) of the 4 px patch
# grid and token (i, j) of the 4x-downsampling tokenizer cover the same region: 28 px items
# zero-padded to 32 px (as for the dVAE), colour jitter 0.4, horizontal flip, crop scale
# (0.6, 1), bicubic / lanczos; BEiT's block-wise masking of 24 of the 8 x 8 = 64 patches (the
# paper's 75 / 196 = 38 %) in blocks of >= 4 patches. A config that masks differently keeps
# the views and re-assigns its pipeline:
#   train_pipeline = [*_base_.view_transforms, dict(type='GenerateMask', ...),
#                     dict(type='PackTwoViewInputs')]
#   train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# Create the data with: python tools/dataset_converters/fashion_mnist.py --out data/fashion_mnist
data_root = 'data/fashion_mnist'

view_transforms = [
    dict(type='LoadImageChecked'),
    dict(type='mmcv.Pad', size=(32, 32), pad_val=0),   # 28 -> 32 px as for the dVAE
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='TwoViewRandomResizedCrop', size=32, second_size=32,
         scale=(0.6, 1.0), interpolation='bicubic', second_interpolation='lanczos'),
]
train_pipeline = [
    *view_transforms,
    dict(type='GenerateMask',
         mask_generator=dict(type='BlockwiseMaskGenerator', input_size=8,
                             num_masking_patches=24, min_num_patches=4)),
    dict(type='PackTwoViewInputs'),
]
train_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetStyleDataset', data_root=data_root, ann_file='meta/train.txt',
                 data_prefix=dict(img_path='train'), pipeline=train_pipeline))
