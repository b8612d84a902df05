# The toy run of toy_regression.py as a pre-emptible job: a checkpoint every iteration, only the
# newest kept (the setting in which deleting before saving loses the run), slow fsyncs on demand.
_base_ = ['./toy_regression.py']
custom_imports = dict(imports=['tests.toy_components', 'tests.slow_fsync'],
                      allow_failed_imports=False)
train_cfg = dict(by_epoch=False, max_iters=40)
default_hooks = dict(
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=1, by_epoch=False,
                    max_keep_ckpts=1))
