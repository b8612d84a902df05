# BEiT v2 (Peng et al., 2022) on real Fashion-MNIST with the backbone, data and masking of
# configs/beit/beit_vit-fmnist_fashion-mnist.py (configs/_base_/datasets/fashion-mnist_mim.py,
# configs/_base_/mim-variants_fashion-mnist.py: 1500 iterations): MIM on the tokens of the VQ-KD
# tokenizer of configs/vqkd/vqkd_vit-fmnist_fashion-mnist.py (checkpoints/vqkd_fashion-mnist.pth)
# plus the CLS-token patch aggregation (Sec. 2.3): [CLS of layer 6; patches of layer 4]
# through a 2-block neck, predicted by the shared MIM head (l = 4 of 6 ~ the paper's 9 of 12).
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/fashion-mnist_mim.py',
          '../_base_/mim-variants_fashion-mnist.py']

fmnist_mean, fmnist_std = (72.94 / 255, ) * 3, (90.02 / 255, ) * 3
model = dict(
    type='BEiTv2',
    backbone=dict(out_type='raw', out_indices=(3, 5)),
    target_generator=dict(
        type='VisualTokenTarget',
        # must equal the tokenizer of configs/vqkd/vqkd_vit-fmnist_fashion-mnist.py (the
        # frozen tokenizer needs no teacher, only the width of its features)
        tokenizer=dict(
            type='VQKD',
            encoder=dict(arch=dict(embed_dims=128, num_layers=4, num_heads=4,
                                                   feedforward_channels=512),
                         img_size=32, patch_size=4, use_abs_pos_emb=True),
            decoder=dict(arch=dict(embed_dims=128, num_layers=1, num_heads=4,
                                                   feedforward_channels=512)),
            teacher=None, teacher_dims=192, vocab_size=512, embed_dim=32,
            img_mean=fmnist_mean, img_std=fmnist_std),
        checkpoint='checkpoints/vqkd_fashion-mnist.pth'),
    neck=dict(type='PatchAggregationNeck', embed_dims=192, num_heads=3,
              feedforward_channels=768, num_layers=2, layer_scale_init_value=0.1),
    head=dict(type='MIMHead', in_channels=192, vocab_size=512))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=250, by_epoch=False, max_keep_ckpts=2))
log_processor = dict(window_size=25, by_epoch=False)
# k-NN top-1 of the frozen CLS token (k=20, T=0.07) on 2,000 train / 1,000 val images every
# 150 iterations and at the start (about 20 s each on 2 CPU cores; docs/monitoring.md).
custom_hooks = [
    dict(type='KNNMonitorHook', interval=150, at_start=True, data_root='data/fashion_mnist',
         num_train=2000, num_val=1000),
]
