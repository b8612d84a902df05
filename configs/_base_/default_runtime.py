# Runtime shared by every beitlab config: scope, hooks, environment, logging.
default_scope = 'beitlab'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # gloo works everywhere (CPU-only machines included); tools/train.py switches
    # to nccl when CUDA is available. timeout (seconds): a collective that waits longer
    # for another rank fails instead of hanging (docs/reliability.md, "Timeouts").
    dist_cfg=dict(backend='gloo', timeout=600),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')

log_processor = dict(window_size=10, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
