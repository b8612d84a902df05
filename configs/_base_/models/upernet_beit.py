# UPerNet on a beitlab BEiTViT through mmseg (BEiT Sec. 3.2, App. "semantic segmentation"):
# blocks 3, 5, 7, 11 of BEiT-B -> ViTMultiScaleNeck (strides 4, 8, 16, 32) -> UPerHead, plus an
# FCN auxiliary head on the third level (in_index=2) with loss weight 0.4. CE ignores 255.
# Dice instead of CE: --cfg-options model.decode_head.loss_decode.type=DiceLoss
# (or a list [CE, DiceLoss(use_sigmoid=False)] to sum both).
norm_cfg = dict(type='SyncBN', requires_grad=True)  # official multi-GPU recipe; BN on a CPU
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    # whole-image inference: pad to a multiple of the patch size (cropped back afterwards)
    test_cfg=dict(size_divisor=16))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='BEiTViT',  # arch set by each config: 'base', 'large' or a dict
        with_mask_token=False,  # the downstream backbone never masks its input
        img_size=640,
        patch_size=16,
        out_indices=(3, 5, 7, 11),
        out_type='featmap',
        use_abs_pos_emb=False,  # official fine-tuning: per-layer relative position bias only
        use_rel_pos_bias=True,
        layer_scale_init_value=0.1,
        drop_path_rate=0.1,
        # keeps the pre-trained final norm in use (on the last level)
        final_norm=True),
    # pre-trained weights: backbone.init_cfg=dict(type='BEiTPretrained', checkpoint=...,
    # prefix='backbone.') (beitlab.downstream.mmseg_adapter)
    neck=dict(type='ViTMultiScaleNeck', embed_dims=768, norm_cfg=norm_cfg),
    decode_head=dict(
        type='UPerHead',
        in_channels=[768, 768, 768, 768],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=768,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        ignore_index=255,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=768,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        ignore_index=255,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(640, 640), stride=(426, 426)))
