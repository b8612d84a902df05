# Tiny MAE for tests: 2-layer 64-dim ViT on 32 px images, 1-block decoder, 2 iterations.
_base_ = ['../_base_/default_runtime.py', '../_base_/mim-variants_tiny.py']

model = dict(
    type='MAE',
    mask_ratio=0.75,
    target_generator=dict(type='PixelTarget', patch_size=4, norm_pix=True),
    head=dict(type='MAEDecoder', grid=(8, 8), patch_size=4, embed_dims=64,
              decoder_embed_dims=32, decoder_depth=1, decoder_num_heads=2))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=2, by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
