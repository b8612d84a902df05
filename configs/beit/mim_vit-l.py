# BEiT-L/16 masked image modeling on ImageNet-1k, 224 px, 800 epochs, total batch 2048:
# the base recipe with ViT-L and layer scale 1e-5 (official run_beit_pretraining.py,
# --layer_scale_init_value: "0.1 for base, 1e-5 for large"). Shared parts:
# configs/_base_/beit_mim_in1k-224.py.
_base_ = ['../_base_/default_runtime.py', '../_base_/beit_mim_in1k-224.py']

model = dict(
    backbone=dict(arch='large', layer_scale_init_value=1e-5),
    head=dict(in_channels=1024))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=20, max_keep_ckpts=3))
