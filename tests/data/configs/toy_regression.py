_base_ = ['../../../configs/_base_/default_runtime.py']
custom_imports = dict(imports=['tests.toy_components'], allow_failed_imports=False)

model = dict(type='ToyRegressor')
train_dataloader = dict(
    batch_size=4, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ToyRegressionDataset'),
    collate_fn=dict(type='default_collate'))
train_cfg = dict(by_epoch=False, max_iters=2)
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=0.01))
param_scheduler = []
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=1, by_epoch=False))
log_processor = dict(by_epoch=False)
