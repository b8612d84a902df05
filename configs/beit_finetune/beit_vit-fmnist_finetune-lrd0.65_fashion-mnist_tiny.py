# Tiny variant of beit_vit-fmnist_finetune-lrd0.65_fashion-mnist.py for tests: 2 layers of
# 64 dims, 2 iterations, no pre-trained checkpoint (tests pass one with --cfg-options).
_base_ = ['./beit_vit-fmnist_finetune-lrd0.65_fashion-mnist.py']

model = dict(
    pretrained=None,
    backbone=dict(arch=dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)),
    head=dict(in_channels=64))
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False)
val_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)]
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
