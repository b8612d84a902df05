# The tiny BEiT config for 3 iterations with KNNMonitorHook on real Fashion-MNIST items (the
# idx files of tests/data/fashion_mnist); its pipeline draws from every random generator, so
# a hook that did not restore them would change the training that follows.
_base_ = ['../../../configs/beit/mim_vit-tiny_1xb8-2it_tiny.py']
custom_imports = dict(imports=['tests.monitoring_components'], allow_failed_imports=False)

knn_pipeline = [
    dict(type='ConsumeRandomness'),
    dict(type='mmcv.Pad', size=(32, 32), pad_val=0),
    dict(type='PackImageInputs'),
]
custom_hooks = [
    dict(type='KNNMonitorHook', interval=2, layers=(0, -1), pooling=['cls', 'mean'], k=5,
         num_train=64, num_val=32,
         train_dataloader=dict(batch_size=16, dataset=dict(
             type='FashionMNISTIdxDataset', split='train', num=200, pipeline=knn_pipeline)),
         val_dataloader=dict(batch_size=16, dataset=dict(
             type='FashionMNISTIdxDataset', split='val', num=100, pipeline=knn_pipeline))),
]
train_cfg = dict(max_iters=3)
