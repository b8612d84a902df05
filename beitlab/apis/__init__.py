"""Inference and feature API for trained beitlab models (no registration here).

    from beitlab.apis import init_model, extract_features
    model = init_model('configs/beit/beit_vit-fmnist_fashion-mnist.py', 'work_dirs/x/iter_200.pth')
    cls, = extract_features(model, ['img0.png', 'img1.png'], layers=(-1, ), pooling='cls')
"""
from .features import layer_features, layer_tokens, pool_tokens
from .inference import (
    Classification,
    MIMPrediction,
    checkpoint_state_dict,
    classify,
    extract_features,
    inference_pipeline,
    init_model,
    mim_predict,
)

__all__ = ['init_model', 'extract_features', 'classify', 'mim_predict', 'inference_pipeline',
           'checkpoint_state_dict', 'Classification', 'MIMPrediction', 'layer_features',
           'layer_tokens', 'pool_tokens']
