# Tiny Mask R-CNN for tests and smoke runs: a 2-layer, 64-dim BEiTViT (random init) on
# 32 x 32 Fashion-MNIST scenes, two iterations, COCO box + mask AP. Make the data with
#   python tools/dataset_converters/fashion_mnist_scenes_coco.py --out data/fmnist_scenes_coco_32px \
#       --canvas 32 32 --item-size 12 20 --num-items 1 3 --num-train 8 --num-val 4
_base_ = [
    '../_base_/mmdet_runtime.py', '../_base_/models/mask-rcnn_beit-sfp.py',
    '../_base_/datasets/fashion-mnist-scenes_instance.py'
]
data_root = 'data/fmnist_scenes_coco_32px/'
num_classes = 10
channels = 32
model = dict(
    # the BEiT pre-training normalisation (configs/beit/beit_vit-fmnist_fashion-mnist.py)
    data_preprocessor=dict(mean=[72.94] * 3, std=[90.02] * 3, bgr_to_rgb=False),
    backbone=dict(
        arch=dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128),
        img_size=32, patch_size=4, out_indices=(1, ), drop_path_rate=0.0),
    neck=dict(in_channels=64, out_channels=channels, scale_factors=(1.0, 0.5, 0.25), num_outs=4),
    rpn_head=dict(in_channels=channels, feat_channels=channels,
                  anchor_generator=dict(scales=[4], strides=[4, 8, 16, 32])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels, featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(in_channels=channels, fc_out_channels=64, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=channels, featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(num_convs=1, in_channels=channels, conv_out_channels=channels,
                       num_classes=num_classes)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=50),
                   rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50), rcnn=dict(max_per_img=20)))

train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)]
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='beitlab.LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.75))
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(by_epoch=False, interval=2))
log_processor = dict(by_epoch=False)
