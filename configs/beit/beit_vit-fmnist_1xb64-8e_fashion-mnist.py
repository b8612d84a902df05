# BEiT pre-training of the Fashion-MNIST model zoo (docs/model_zoo.md): the model, data,
# masking, optimizer and fast path of configs/beit/beit_vit-fmnist_fashion-mnist.py, trained
# for 8 epochs of the 60,000 training images (labels unused) instead of 200 iterations.
# One epoch is 938 iterations at batch 64; a checkpoint is kept at the end of every epoch, so
# that fine-tuning can measure the gain against the length of pre-training.
# Warm-up: half an epoch (the official recipe warms up 10 of 800 epochs; a short schedule
# needs relatively more). The k-NN monitor runs every epoch on 5,000 / 2,000 images, from
# the CLS token and the mean of the patch tokens of layers 4, 5 and 6.
_base_ = ['./beit_vit-fmnist_fashion-mnist.py']

epoch_iters = 938                     # ceil(60,000 / 64)
num_epochs = 8
max_iters, warmup_iters = num_epochs * epoch_iters, epoch_iters // 2
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=False,
         begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-5, T_max=max_iters - warmup_iters,
         by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=epoch_iters, by_epoch=False,
                    max_keep_ckpts=num_epochs))
log_processor = dict(window_size=50, by_epoch=False)
custom_hooks = [
    dict(type='KNNMonitorHook', interval=epoch_iters, at_start=True, data_root=_base_.data_root,
         num_train=5000, num_val=2000, layers=(3, 4, 5), pooling=('cls', 'mean')),
]
