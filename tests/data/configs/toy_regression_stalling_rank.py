# The toy regression run in which rank 1 stalls after its first step; with 2 processes the
# job must fail once env_cfg.dist_cfg.timeout has passed instead of waiting forever.
_base_ = ['./toy_regression.py']
custom_imports = dict(imports=['tests.toy_components', 'tests.tools.stalling_rank'],
                      allow_failed_imports=False)
model = dict(type='StallingToyRegressor')
train_cfg = dict(by_epoch=False, max_iters=4)
env_cfg = dict(dist_cfg=dict(backend='gloo', timeout=10))
