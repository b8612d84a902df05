"""BEiT configs: the paper recipe builds and trains a step; tools/train.py runs and resumes
the tiny variant; the no-weight-decay rules hit exactly the intended parameters."""
import math

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from skimage import data as skdata

from beitlab.checkpoint import install_safe_checkpoint_loading, safe_torch_load
from beitlab.registry import MODELS, TRANSFORMS
from beitlab.utils import register_all_modules
from tests.tools_helpers import REPO_ROOT, run_tool

register_all_modules(init_default_scope=True)


def run_pipeline(cfg: Config, img: np.ndarray) -> dict:
    """The config's training pipeline after loading, on an in-memory BGR image."""
    results = dict(img=img, img_path='mem.png', img_shape=img.shape[:2], ori_shape=img.shape[:2])
    for step in cfg.train_dataloader.dataset.pipeline[1:]:
        results = TRANSFORMS.build(step)(results)
    return results


def test_mim_vit_b_paper_recipe_builds_and_trains_one_step():
    cfg = Config.fromfile(REPO_ROOT / 'configs/beit/mim_vit-b.py')
    # paper / official recipe
    bb = cfg.model.backbone
    assert (bb.arch, bb.img_size, bb.patch_size, bb.drop_path_rate, bb.layer_scale_init_value) \
        == ('base', 224, 16, 0.1, 0.1)
    assert bb.use_shared_rel_pos_bias and not bb.use_abs_pos_emb and not bb.use_rel_pos_bias
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, tuple(opt.betas), opt.weight_decay) == \
        ('AdamW', 1.5e-3, (0.9, 0.999), 0.05)
    assert cfg.optim_wrapper.clip_grad.max_norm == 3.0
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=2048)
    warm, cos = cfg.param_scheduler
    assert (warm.end, cos.begin, cos.end, cos.eta_min) == (10, 10, 800, 1e-5)
    assert cfg.train_cfg.max_epochs == 800
    assert Config.fromfile(REPO_ROOT / 'configs/beit/mim_vit-l.py').model.backbone \
        .layer_scale_init_value == 1e-5

    cfg.model.target_generator.checkpoint = None   # random DALL-E-shaped tokenizer
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    np.random.seed(0)
    results = run_pipeline(cfg, cv2.resize(skdata.chelsea()[..., ::-1], (256, 200)))
    assert results['data_samples'].mask.shape == (14, 14)
    batch = pseudo_collate([results])
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    log = model.train_step(batch, optim)
    assert set(log) == {'loss', 'mlm_acc'}
    # a fresh head predicts nearly uniformly over the 8192 DALL-E tokens
    assert abs(log['loss'].item() - math.log(8192)) < 0.5


def test_tiny_config_trains_two_iterations_and_resumes(tmp_path):
    install_safe_checkpoint_loading()   # allow-lists mmengine's HistoryBuffer for safe loads
    work = tmp_path / 'work'
    config = 'configs/beit/mim_vit-tiny_1xb8-2it_tiny.py'   # as written: tests/data/tiny_images
    proc = run_tool('train.py', config, '--work-dir', work)
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [2/2]' in log and 'mlm_acc' in log, log[-3000:]
    first = safe_torch_load(work / 'iter_2.pth')
    assert {k.split('.')[0] for k in first['state_dict']} == {'backbone', 'head'}

    proc = run_tool('train.py', config, '--work-dir', work, '--resume',
                    '--cfg-options', 'train_cfg.max_iters=3')
    assert 'resumed' in (proc.stdout + proc.stderr).lower()
    third = safe_torch_load(work / 'iter_3.pth')
    assert third['meta']['iter'] == 3
    steps = {float(s['step']) for s in third['optimizer']['state'].values()}
    assert steps == {3.0}

    published = tmp_path / 'beit.pth'
    run_tool('model_converters/publish_mim_checkpoint.py', work / 'iter_3.pth', published)
    weights = torch.load(published, map_location='cpu', weights_only=True)  # no allow-list
    assert weights['state_dict'].keys() == third['state_dict'].keys()
    assert weights['meta']['iter'] == 3

    out = tmp_path / 'vis.png'
    proc = run_tool('visualization/vis_mim.py', config, work / 'iter_3.pth', '--out', out,
                    '--num-images', '2')
    assert 'masked-token accuracy' in proc.stdout
    img = cv2.imread(str(out))
    # a title and column labels above two rows of five 4x panels
    from tests.tools.test_vis_mim import vis_mim
    header = vis_mim.draw_header('', vis_mim.COLUMN_LABELS, 32 * 4)
    assert img is not None and img.shape[:2] == (header.shape[0] + 2 * 32 * 4 + 4, header.shape[1])


def test_no_weight_decay_rules_hit_the_intended_parameters():
    cfg = Config.fromfile(REPO_ROOT / 'configs/beit/beit_vit-fmnist_fashion-mnist.py')
    cfg.model.target_generator.checkpoint = None
    model = MODELS.build(cfg.model)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    decay_of = {}
    id_to_name = {id(p): n for n, p in model.named_parameters()}
    for group in optim.optimizer.param_groups:
        for p in group['params']:
            decay_of[id_to_name[id(p)]] = group['weight_decay']
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(decay_of) == trainable
    no_decay_names = {'pos_embed', 'cls_token', 'mask_token', 'relative_position_bias_table'}
    expected_zero = {n for n, p in model.named_parameters() if p.requires_grad and (
        p.ndim == 1 or n.split('.')[-1] in no_decay_names)}
    assert {n for n, wd in decay_of.items() if wd == 0} == expected_zero
    assert {wd for n, wd in decay_of.items() if n not in expected_zero} == {0.05}
    assert 'backbone.blocks.0.gamma_1' in expected_zero and 'backbone.blocks.0.attn.q_bias' \
        in expected_zero and 'backbone.rel_pos_bias.relative_position_bias_table' in expected_zero


def test_fashion_mnist_tokenizer_matches_the_phase1_dvae_config():
    beit = Config.fromfile(REPO_ROOT / 'configs/beit/beit_vit-fmnist_fashion-mnist.py')
    dvae = Config.fromfile(REPO_ROOT / 'configs/dvae/dvae_fashion-mnist.py')
    assert beit.model.target_generator.tokenizer.to_dict() == dvae.model.tokenizer.to_dict()
    assert beit.model.head.vocab_size == dvae.model.tokenizer.vocab_size


def test_mim_vit_b_dvae_8192_config_uses_the_tokenizer_of_its_dvae_config():
    from beitlab.utils.config_check import check_config_types
    cfg = Config.fromfile(REPO_ROOT / 'configs/beit/mim_vit-b_dvae-8192.py')
    dvae = Config.fromfile(REPO_ROOT / 'configs/dvae/dvae_8192-112px_imagenet.py')
    check_config_types(cfg)
    target = cfg.model.target_generator
    assert target.type == 'VisualTokenTarget'
    assert target.tokenizer.to_dict() == dvae.model.tokenizer.to_dict()
    assert target.checkpoint == 'checkpoints/dvae_8192-112px_imagenet.pth'
    # the ViT-B recipe is unchanged; the head predicts the dVAE's 8192 codes
    assert cfg.model.backbone.arch == 'base' and cfg.model.head.vocab_size == 8192
    # the tokenizer view is scaled to [0, 1] RGB, as the dVAE's training inputs
    dp, dvae_dp = cfg.model.data_preprocessor, dvae.model.data_preprocessor
    assert tuple(dp.tok_mean) == tuple(dvae_dp.mean) and tuple(dp.tok_std) == tuple(dvae_dp.std)
    assert dp.to_rgb and dvae_dp.bgr_to_rgb

    target.checkpoint = None   # random weights: only the shapes are checked
    model = MODELS.build(cfg.model)
    assert type(model.target_generator.tokenizer).__name__ == 'DVAE'
    view = torch.rand(2, 3, 112, 112)   # the 112 px tokenizer view, in [0, 1]
    tokens = model.target_generator(view, patch_grid=model.backbone.grid)
    assert tuple(model.backbone.grid) == (14, 14)
    assert tokens.shape == (2, 14 * 14) and tokens.dtype == torch.int64
    assert 0 <= int(tokens.min()) and int(tokens.max()) < 8192
