"""The one unwrap rule: the state dict under ``state_dict`` / ``model`` / ``module`` / ``ema``
(in that order), nested wrappers, DDP's ``module.`` prefix, and prefix selection."""
from collections import OrderedDict

import pytest
import torch

from beitlab.checkpoint import WRAPPER_KEYS, CheckpointKeyError, select_prefix, unwrap_state_dict

STATE = {'cls_token': torch.ones(1, 1, 4), 'blocks.0.norm1.weight': torch.arange(4.)}


@pytest.mark.parametrize('key', WRAPPER_KEYS)
def test_each_wrapper_key_gives_the_state_dict(key: str) -> None:
    assert WRAPPER_KEYS == ('state_dict', 'model', 'module', 'ema')
    got = unwrap_state_dict({key: STATE, 'meta': {'epoch': 3}, 'optimizer': {'state': {}}})
    assert got is STATE


def test_a_plain_state_dict_is_its_own_state_dict() -> None:
    assert unwrap_state_dict(STATE) is STATE


def test_the_order_decides_between_several_wrappers() -> None:
    other = {'cls_token': torch.zeros(1, 1, 4)}
    # mmengine's state_dict before official's model; trained weights before an EMA copy
    assert unwrap_state_dict({'ema': other, 'model': STATE}) is STATE
    assert unwrap_state_dict({'model': other, 'state_dict': STATE}) is STATE
    assert unwrap_state_dict({'module': other, 'model': STATE}) is STATE
    # official beit2 writes model and model_ema: the trained weights, unless asked by name
    assert unwrap_state_dict({'model': STATE, 'model_ema': other}) is STATE
    assert unwrap_state_dict({'model': STATE, 'model_ema': other}, key='model_ema') is other


def test_nested_wrappers_and_the_ddp_prefix() -> None:
    assert unwrap_state_dict({'module': {'model': STATE}}) is STATE
    assert unwrap_state_dict({'state_dict': {'ema': {'module': STATE}}}) is STATE
    ddp = OrderedDict((f'module.{k}', v) for k, v in STATE.items())
    ddp._metadata = OrderedDict([('module', {'version': 1}), ('module.blocks', {'version': 2})])
    got = unwrap_state_dict({'model': ddp})
    assert list(got) == list(STATE)
    assert got._metadata == OrderedDict([('', {'version': 1}), ('blocks', {'version': 2})])
    # a prefix on only some keys is a name, not a wrapper: kept
    mixed = {'module.x': torch.zeros(1), 'y': torch.zeros(1)}
    assert unwrap_state_dict(mixed) is mixed


def test_no_state_dict_names_the_keys_found() -> None:
    with pytest.raises(CheckpointKeyError) as info:
        unwrap_state_dict({'weights': STATE, 'epoch': 3}, source="'x.pth'")
    message = str(info.value)
    assert "'x.pth' holds no state dict" in message
    assert "'weights': 'dict'" in message and "'epoch': 'int'" in message
    assert "'state_dict' / 'model' / 'module' / 'ema'" in message
    with pytest.raises(CheckpointKeyError, match=r"\['model'\]\['state_dict'\] holds no state dict"):
        unwrap_state_dict({'model': {'state_dict': {}}})
    with pytest.raises(CheckpointKeyError, match="found a list"):
        unwrap_state_dict([1, 2])
    with pytest.raises(CheckpointKeyError, match="has no key 'model_ema'"):
        unwrap_state_dict({'model': STATE}, key='model_ema')


def test_select_prefix_keeps_and_strips() -> None:
    state = {'backbone.cls_token': torch.ones(1), 'backbone.blocks.0.x': torch.ones(1),
             'head.fc.weight': torch.ones(1)}
    assert list(select_prefix(state, 'backbone.')) == ['cls_token', 'blocks.0.x']
    assert select_prefix(state, '') == state
    with pytest.raises(CheckpointKeyError) as info:
        select_prefix(state, 'teacher.', "'t.pth'")
    assert "'t.pth' has no key starting with 'teacher.'" in str(info.value)
    assert 'backbone.cls_token' in str(info.value)
