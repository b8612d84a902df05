"""A classifier exported to the official layout loads strictly into the official fine-tuning
model, and an official fine-tuned classifier loads strictly into ``ImageClassifier``.

The official model's state dict is written out here from ``beit/modeling_finetune.py``
(``VisionTransformer`` with ``use_rel_pos_bias``, ``use_mean_pooling``, ``init_values``):
no ``mask_token``, and every ``Attention`` saves its ``relative_position_index`` buffer.
"""
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from beitlab.checkpoint.layouts.official import beitlab_classifier_to_official, official_classifier_to_beitlab
from beitlab.registry import MODELS
from beitlab.utils import register_all_modules
from tests.models.test_beit_vit import official_index  # the official Attention's index
from tests.tools_helpers import REPO_ROOT

TINY = REPO_ROOT / 'configs/beit_finetune/beit_vit-fmnist_finetune-lrd0.65_fashion-mnist_tiny.py'


def official_finetune_state_shapes(depth: int, dim: int, hidden: int, heads: int, side: int,
                                   patch: int, num_classes: int) -> dict:
    """Key -> shape of the official fine-tuning VisionTransformer (abs pos emb, per-layer
    relative bias, mean pooling with fc_norm, layer scale)."""
    shapes = {'cls_token': (1, 1, dim), 'pos_embed': (1, side * side + 1, dim),
              'patch_embed.proj.weight': (dim, 3, patch, patch), 'patch_embed.proj.bias': (dim, ),
              'fc_norm.weight': (dim, ), 'fc_norm.bias': (dim, ),
              'head.weight': (num_classes, dim), 'head.bias': (num_classes, )}
    for i in range(depth):
        b = f'blocks.{i}.'
        shapes.update({
            b + 'gamma_1': (dim, ), b + 'gamma_2': (dim, ),
            b + 'norm1.weight': (dim, ), b + 'norm1.bias': (dim, ),
            b + 'attn.q_bias': (dim, ), b + 'attn.v_bias': (dim, ),
            b + 'attn.relative_position_bias_table': ((2 * side - 1) ** 2 + 3, heads),
            b + 'attn.relative_position_index': (side * side + 1, side * side + 1),
            b + 'attn.qkv.weight': (3 * dim, dim),
            b + 'attn.proj.weight': (dim, dim), b + 'attn.proj.bias': (dim, ),
            b + 'norm2.weight': (dim, ), b + 'norm2.bias': (dim, ),
            b + 'mlp.fc1.weight': (hidden, dim), b + 'mlp.fc1.bias': (hidden, ),
            b + 'mlp.fc2.weight': (dim, hidden), b + 'mlp.fc2.bias': (dim, )})
    return shapes


def build_tiny_classifier() -> torch.nn.Module:
    register_all_modules()
    cfg = Config.fromfile(str(TINY))
    with DefaultScope.overwrite_default_scope('beitlab'):
        return MODELS.build(cfg.model)


def test_exported_classifier_has_exactly_the_official_state_dict() -> None:
    model = build_tiny_classifier()
    assert 'backbone.mask_token' not in model.state_dict()  # with_mask_token=False
    official = beitlab_classifier_to_official(model.state_dict())
    expected = official_finetune_state_shapes(depth=2, dim=64, hidden=128, heads=2, side=8,
                                              patch=4, num_classes=10)
    assert sorted(official) == sorted(expected)  # strict: nothing missing, nothing extra
    for key, shape in expected.items():
        assert tuple(official[key].shape) == shape, key
    for i in range(2):
        index = official[f'blocks.{i}.attn.relative_position_index']
        assert index.dtype == torch.int64
        assert torch.equal(index, official_index(8, 8))


def test_official_classifier_loads_strictly_and_round_trips() -> None:
    model = build_tiny_classifier()
    official = beitlab_classifier_to_official(model.state_dict())
    official = {k: torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v
                for k, v in official.items()}
    fresh = build_tiny_classifier()
    result = fresh.load_state_dict(official_classifier_to_beitlab({'model': official}), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    again = beitlab_classifier_to_official(fresh.state_dict())
    assert sorted(again) == sorted(official)
    for k, v in official.items():
        assert torch.equal(again[k], v), k


def test_an_older_export_with_a_mask_token_still_exports_cleanly() -> None:
    model = build_tiny_classifier()
    state = dict(model.state_dict())
    state['backbone.mask_token'] = torch.zeros(1, 1, 64)  # classifiers saved before the option
    assert 'mask_token' not in beitlab_classifier_to_official(state)
