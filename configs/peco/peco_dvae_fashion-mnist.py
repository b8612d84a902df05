# PeCo tokenizer (Dong et al., 2023, Sec. 3.2) on real Fashion-MNIST: the Phase-1 dVAE of
# configs/dvae/dvae_fashion-mnist.py (same architecture, data and lr; 1500 iterations with
# 75 warm-up instead of 700 with 50, unused codes restarted after 50 steps instead of 20)
# trained with an added perceptual loss: the feature distance, at layers 2, 4 and 6, of the frozen
# Fashion-MNIST BEiT backbone (checkpoints/beit_fashion-mnist.pth; the paper uses VGG).
# The checkpoint holds plain DVAE keys: BEiT pre-training reads it with the dVAE tokenizer of
# configs/beit/beit_vit-fmnist_fashion-mnist.py by pointing `checkpoint` at it.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/fashion-mnist_32px_tokenizer.py',
]

vocab_size = 512
model = dict(
    type='TokenizerTrainer',
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[0., 0., 0.],
                           std=[255., 255., 255.], bgr_to_rgb=True),
    tokenizer=dict(
        type='PerceptualDVAE', vocab_size=vocab_size, downsample=4, in_channels=3,
        hidden_channels=32, embed_dim=64, num_res_blocks=1, beta=0.25,
        quantizer=dict(restart_unused_after=50),
        perceptual_loss=dict(  # a PerceptualLoss (the default type)
            network=dict(
                         arch=dict(embed_dims=192, num_layers=6, num_heads=3,
                                   feedforward_channels=768),
                         img_size=32, patch_size=4, out_type='featmap', out_indices=(1, 3, 5),
                         use_abs_pos_emb=True, use_shared_rel_pos_bias=True,
                         layer_scale_init_value=0.1),
            checkpoint='checkpoints/beit_fashion-mnist.pth', prefix='backbone.',
            # the BEiT view's normalisation, in [0, 1] units
            input_mean=(72.94 / 255, ) * 3, input_std=(90.02 / 255, ) * 3,
            loss_weight=1.0)))

max_iters = 1500
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_evaluator = dict(type='ReconstructionMetric', vocab_size=vocab_size)
test_evaluator = val_evaluator

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=75),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=75, end=max_iters),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=1))
log_processor = dict(window_size=10, by_epoch=False)
