# Tiny BEiT v2 for tests: 2-layer 64-dim ViT, a randomly initialised 32-code VQ-KD tokenizer
# (no checkpoint), patch aggregation of layer 1's patches with layer 2's CLS, 2 iterations.
_base_ = ['../_base_/default_runtime.py', '../_base_/mim-variants_tiny.py']

model = dict(
    type='BEiTv2',
    backbone=dict(out_type='raw', out_indices=(0, 1)),
    target_generator=dict(
        type='VisualTokenTarget',
        tokenizer=dict(
            type='VQKD',
            encoder=dict(arch=dict(embed_dims=32, num_layers=1, num_heads=2,
                                                   feedforward_channels=64),
                         img_size=32, patch_size=4),
            teacher=None, teacher_dims=64, vocab_size=32, embed_dim=8)),
    neck=dict(type='PatchAggregationNeck', embed_dims=64, num_heads=2,
              feedforward_channels=128, num_layers=1),
    head=dict(type='MIMHead', in_channels=64, vocab_size=32))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=2, by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
