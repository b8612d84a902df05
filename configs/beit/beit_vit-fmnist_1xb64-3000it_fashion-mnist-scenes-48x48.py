# BEiT pre-training on unlabelled images of the segmentation / detection domain: 48 x 48
# scenes of Fashion-MNIST items (the method's premise: pre-train on unlabelled images of the
# target domain, then fine-tune on the few labelled ones). The model, tokenizer, optimizer
# and fast path of configs/beit/beit_vit-fmnist_fashion-mnist.py at the scenes' resolution:
# 48 px images, 4 px patches -> 12 x 12 = 144 patches; the Fashion-MNIST dVAE (4x down)
# gives 12 x 12 tokens of the same regions; 58 of 144 patches masked (40 %, as 75 / 196 in
# the paper) in blocks of >= 4 patches. Only the images are read (UnlabeledImageFolder):
#   python tools/dataset_converters/fashion_mnist_scenes_seg.py \
#       --out data/fashion_mnist_scenes_unlabelled --num-train 20000 --num-val 0 --seed 1
# 20,000 scenes composed from the Fashion-MNIST training items (the segmentation and
# detection validation scenes are composed from the test items, so none of their items is
# seen here). 3,000 iterations of batch 64 (9.6 epochs), half an epoch of warm-up, cosine.
# The segmentation configs load the result at the same 12 x 12 grid (no interpolation).
_base_ = ['./beit_vit-fmnist_fashion-mnist.py']

img_size, patch_size = 48, 4
grid = img_size // patch_size
data_root = 'data/fashion_mnist_scenes_unlabelled'

model = dict(backbone=dict(img_size=img_size))

train_pipeline = [
    dict(type='LoadImageChecked'),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='TwoViewRandomResizedCrop', size=img_size, second_size=img_size,
         scale=(0.6, 1.0), interpolation='bicubic', second_interpolation='lanczos'),
    dict(type='GenerateMask',
         mask_generator=dict(type='BlockwiseMaskGenerator', input_size=grid,
                             num_masking_patches=58, min_num_patches=4)),
    dict(type='PackTwoViewInputs'),
]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='UnlabeledImageFolder', data_root=data_root,
                 data_prefix=dict(img_path='img_dir/train'), pipeline=train_pipeline))

epoch_iters = 313                     # ceil(20,000 / 64)
max_iters, warmup_iters = 3000, epoch_iters // 2
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=False,
         begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-5, T_max=max_iters - warmup_iters,
         by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=1000, by_epoch=False,
                    max_keep_ckpts=3))
log_processor = dict(window_size=50, by_epoch=False)
# no k-NN monitor: the scenes have no image-level label
custom_hooks = []
