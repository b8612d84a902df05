# Runtime of the mmseg-based configs (configs/upernet_beit/): mmseg's scope, so every mmseg
# dataset, transform, head, loss, metric and hook is found by its plain name; beitlab's
# backbone, neck, initializer and dataset are registered into mmseg by the adapter module.
default_scope = 'mmseg'
custom_imports = dict(imports=['beitlab.downstream.mmseg_adapter'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', by_epoch=False, interval=16000, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # tools/test.py --show-dir sets draw=True, interval=1 and the visualizer's save_dir
    visualization=dict(type='SegVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to nccl on CUDA machines; timeout in seconds bounds every
    # collective (docs/reliability.md, "Timeouts")
    dist_cfg=dict(backend='gloo', timeout=600))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer',
                  alpha=0.6)
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
tta_model = dict(type='SegTTAModel')
