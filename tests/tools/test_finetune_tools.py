"""Fine-tuning end to end: two iterations through tools/train.py from a pre-trained (MIM-layout)
checkpoint, then tools/test.py on the resulting checkpoint; and every fine-tuning config builds."""
import glob
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from beitlab.models.backbones.beit_vit import BEiTViT
from beitlab.registry import MODELS
from beitlab.utils import register_all_modules
from tests.tools_helpers import REPO_ROOT, run_tool

CFG_DIR = REPO_ROOT / 'configs' / 'beit_finetune'
TINY_FMNIST = CFG_DIR / 'beit_vit-fmnist_finetune-lrd0.65_fashion-mnist_tiny.py'


def write_fmnist_like(root) -> None:
    """A 28 px grayscale class-folder dataset with meta lists, like the converter writes."""
    import cv2
    rng = np.random.default_rng(0)
    classes = [f'c{i}' for i in range(10)]
    for split, n in (('train', 20), ('val', 10)):
        lines = []
        for i in range(n):
            c = i % 10
            rel = f'{classes[c]}/{i:05d}.png'
            path = osp.join(root, split, rel)
            os.makedirs(osp.dirname(path), exist_ok=True)
            cv2.imwrite(path, rng.integers(0, 255, (28, 28), dtype=np.uint8))
            lines.append(f'{rel} {c}')
        os.makedirs(osp.join(root, 'meta'), exist_ok=True)
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    with open(osp.join(root, 'meta', 'classes.txt'), 'w') as f:
        f.write('\n'.join(classes) + '\n')


def test_two_iteration_finetune_then_test(tmp_path):
    data = tmp_path / 'fmnist'
    write_fmnist_like(str(data))
    # a MIM-layout checkpoint: shared rel-pos bias, final norm, a MIM head to be dropped
    torch.manual_seed(0)
    pre = BEiTViT(arch=dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128),
                  img_size=32, patch_size=4, use_shared_rel_pos_bias=True,
                  layer_scale_init_value=0.1)
    with torch.no_grad():
        pre.rel_pos_bias.relative_position_bias_table.normal_()
    state = {'backbone.' + k: v for k, v in pre.state_dict().items()}
    state['head.fc.weight'] = torch.randn(512, 64)
    ckpt = tmp_path / 'mim.pth'
    torch.save({'state_dict': state}, ckpt)

    work = tmp_path / 'work'
    opts = [f'model.pretrained={ckpt}', f'train_dataloader.dataset.data_root={data}',
            f'val_dataloader.dataset.data_root={data}', f'test_dataloader.dataset.data_root={data}']
    proc = run_tool('train.py', str(TINY_FMNIST), '--work-dir', str(work), '--cfg-options', *opts,
                    timeout=300)
    log = proc.stdout + proc.stderr
    assert 'loaded pre-trained backbone' in log and 'copied into 2 layers' in log
    assert 'layer-wise lr decay 0.65' in log
    final = work / 'iter_2.pth'
    assert final.exists(), sorted(glob.glob(str(work / '*')))
    test_dir = tmp_path / 'test'
    proc = run_tool('test.py', str(TINY_FMNIST), str(final), '--work-dir', str(test_dir),
                    '--cfg-options', *opts[1:], timeout=300)
    metrics = json.loads((test_dir / 'metrics.json').read_text())
    assert set(metrics) >= {'accuracy/top1', 'accuracy/top5'}
    assert 0.0 <= metrics['accuracy/top1'] <= metrics['accuracy/top5'] <= 100.0
    assert 'accuracy/top1' in proc.stdout

    # export to the official fine-tuned layout and back: bit-identical, official key names
    official = tmp_path / 'official.pth'
    back = tmp_path / 'back.pth'
    spec = importlib.util.spec_from_file_location(
        'beit_classifier_official', REPO_ROOT / 'tools/model_converters/beit_classifier_official.py')
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)  # in-process: two interpreter starts fewer
    assert converter.main(['to-official', str(final), str(official)]) == 0
    assert converter.main(['to-beitlab', str(official), str(back)]) == 0
    off = torch.load(official, weights_only=True)['model']
    assert {'head.weight', 'head.bias', 'fc_norm.weight', 'cls_token',
            'blocks.1.attn.relative_position_bias_table'} <= set(off)
    restored = torch.load(back, weights_only=True)['state_dict']
    assert 'head.fc.weight' in restored and 'backbone.fc_norm.weight' in restored
    assert torch.equal(restored['head.fc.weight'], off['head.weight'])


@pytest.mark.parametrize('name', sorted(p.name for p in CFG_DIR.glob('*.py')))
def test_config_builds(name):
    register_all_modules()
    cfg = Config.fromfile(str(CFG_DIR / name))
    assert cfg.default_scope == 'beitlab'
    model_cfg = cfg.model.copy()
    model_cfg['pretrained'] = None
    if 'in1k' in name and 'tiny' not in name:
        # the real B/16 with one layer, to keep the test light
        model_cfg['backbone'] = dict(model_cfg['backbone'], arch=dict(
            embed_dims=768, num_layers=1, num_heads=12, feedforward_channels=64))
        if model_cfg['backbone'].get('frozen_stages', -1) > 0:
            model_cfg['backbone']['frozen_stages'] = 1
    model = MODELS.build(model_cfg)
    size = cfg.model.backbone.img_size
    logits = model(torch.zeros(2, 3, size, size))
    assert logits.shape == (2, cfg.model.head.num_classes)
