# The toy regression run with NonFiniteGuardHook and a loss that is NaN on chosen calls
# (tests/monitoring_components.py); tests set model.nan_calls, the hook's options and
# train_cfg.max_iters.
_base_ = ['./toy_regression.py']
custom_imports = dict(imports=['tests.toy_components', 'tests.monitoring_components'],
                      allow_failed_imports=False)

model = dict(type='NaNLossToyRegressor', nan_calls=[1])
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=0.01), clip_grad=dict(max_norm=1.0))
train_cfg = dict(by_epoch=False, max_iters=4)
custom_hooks = [dict(type='NonFiniteGuardHook', max_consecutive=3, grad_norm_interval=2)]
default_hooks = dict(checkpoint=dict(max_keep_ckpts=10))
