# RetinaNet (Lin et al., 2017) over a BEiT ViT-B/16 at 1024 x 1024: the one-stage detection loss,
# Focal Loss for the classes + Smooth L1 for the boxes, on the ViTDet simple feature pyramid
# (strides 8..128: the x0.5 level and two max-pooled extra levels).
model = dict(
    type='RetinaNet',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='BEiTViT',
        with_mask_token=False,  # the downstream backbone never masks its input
        arch=dict(embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=3072),
        img_size=1024,
        patch_size=16,
        out_indices=(11, ),
        out_type='featmap',
        use_abs_pos_emb=True,
        use_rel_pos_bias=True,
        layer_scale_init_value=0.1,
        drop_path_rate=0.1,
        # pre-trained weights: init_cfg=dict(type='BEiTPretrained', checkpoint=..., prefix=...)
        final_norm=False),
    neck=dict(
        type='SimpleFeaturePyramid',
        in_channels=768,
        out_channels=256,
        scale_factors=(2.0, 1.0, 0.5),
        num_outs=5),
    bbox_head=dict(
        type='RetinaHead',
        num_classes=80,
        in_channels=256,
        stacked_convs=4,
        feat_channels=256,
        anchor_generator=dict(
            type='AnchorGenerator', octave_base_scale=4, scales_per_octave=3,
            ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                      ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(
        nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=100))
