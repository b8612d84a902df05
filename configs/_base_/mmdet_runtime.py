# Runtime of the mmdet-based configs (configs/mask-rcnn_beit/, configs/retinanet_beit/):
# mmdet's scope, so every mmdet dataset, transform, head, loss, metric and hook is found by
# its plain name; beitlab's backbone, necks and pre-trained initializer are registered into
# mmdet by the adapter module.
default_scope = 'mmdet'
custom_imports = dict(imports=['beitlab.downstream.mmdet_adapter'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='beitlab.AtomicCheckpointHook', interval=1, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # tools/test.py --show-dir sets draw=True, interval=1 and test_out_dir
    visualization=dict(type='DetVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to nccl on CUDA machines; timeout in seconds bounds every
    # collective, longer than elsewhere because COCO evaluation runs on rank 0 while the
    # other ranks wait (docs/reliability.md, "Timeouts")
    dist_cfg=dict(backend='gloo', timeout=1800))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
