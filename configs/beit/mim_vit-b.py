# BEiT-B/16 masked image modeling on ImageNet-1k, 224 px, 800 epochs, total batch 2048
# (8 GPUs x 256; lr scaled to the actual batch): the paper's recipe (BEiT Sec. 2.5, App. B)
# and official `run_beit_pretraining.py --model beit_base_patch16_224_8k_vocab
# --layer_scale_init_value 0.1`. Shared parts: configs/_base_/beit_mim_in1k-224.py.
_base_ = ['../_base_/default_runtime.py', '../_base_/beit_mim_in1k-224.py']

model = dict(
    backbone=dict(arch='base', layer_scale_init_value=0.1),
    head=dict(in_channels=768))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=20, max_keep_ckpts=3))
