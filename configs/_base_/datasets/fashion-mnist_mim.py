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
# The training images come from the four idx files, decoded once and held in memory
# (FashionMNISTDataset: the same [28, 28, 3] uint8 values a PNG of the converter gives after
# LoadImageChecked, which passes them through); fashion_mnist_root = None reads them from
# $BEITLAB_FASHION_MNIST_ROOT or the Debian package's folder. data_root is the ImageNet-style
# folder of the k-NN monitor and fine-tuning; create it with:
#   python tools/dataset_converters/fashion_mnist.py --out data/fashion_mnist
data_root = 'data/fashion_mnist'
fashion_mnist_root = None

view_transforms = [
    dict(type='LoadImageChecked'),                      # in-memory items pass through
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
# mim_collate: default_collate with the 64 masks in one tensor, so that a batch leaves the
# worker as one shared-memory segment per tensor, not one per mask (2x faster worker;
# docs/performance.md, "Fast path").
train_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='beitlab.mim_collate'),
    dataset=dict(type='FashionMNISTDataset', data_root=fashion_mnist_root, split='train',
                 pipeline=train_pipeline))
