"""MIMVisualizationHook: vis_mim's figure goes to the visualiser every N iterations."""
import copy
import glob
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from beitlab.engine.hooks.mim_visualization_hook import MIMVisualizationHook
from beitlab.models.algorithms.mae import prediction_to_pixels
from beitlab.models.targets.pixels import PixelTarget, patchify
from beitlab.utils import register_all_modules
from beitlab.visualization.mim_figure import (
    draw_mim_figure,
    draw_pixel_figure,
    eval_pipeline,
    paste_reconstruction,
)
from tests.tools_helpers import REPO_ROOT

CONFIG = str(REPO_ROOT / 'configs' / 'beit' / 'mim_vit-tiny_1xb8-2it_tiny.py')


def train_with_hook(config: str, work_dir):
    """Two iterations with the hook drawing every iteration; returns the runner, the hook
    and the last picture the local backend saved (RGB)."""
    from beitlab.engine.runner import BeitlabRunner
    register_all_modules()
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.visualizer.name = f'visualizer-{work_dir}'
    cfg.custom_hooks = [dict(type='MIMVisualizationHook', interval=1, num_images=3, scale=2)]
    runner = BeitlabRunner.from_cfg(cfg)
    runner.train()
    files = sorted(glob.glob(str(work_dir / '*' / 'vis_data' / 'vis_image' / 'mim_*.png')))
    assert [f.rsplit('_', 1)[-1] for f in files] == ['1.png', '2.png']
    (hook, ) = [h for h in runner.hooks if isinstance(h, MIMVisualizationHook)]
    return runner, hook, cv2.imread(files[-1])[..., ::-1]


def test_pictures_reach_the_backends(tmp_path) -> None:
    runner, hook, saved = train_with_hook(CONFIG, tmp_path)
    runner.model.eval()
    figure = draw_mim_figure(runner.model, copy.deepcopy(hook._batch), scale=2)
    assert figure.num_images == 3 and figure.labels[:3] == ('image', 'masked\ninput',
                                                            'masked tokens\nright / wrong')
    assert np.array_equal(saved, figure.image)               # the final model's picture
    assert hook.last_accuracy == figure.accuracy


# Pixel targets (MAE, SimMIM): ``reconstruct`` and the reconstruction figure.
MAE_CONFIG = str(REPO_ROOT / 'configs' / 'mae' / 'mae_vit-tiny_1xb8-2it_tiny.py')
SIMMIM_CONFIG = str(REPO_ROOT / 'configs' / 'simmim' / 'simmim_vit-tiny_1xb8-2it_tiny.py')


def _tiny_model(config: str):
    from beitlab.registry import MODELS
    register_all_modules()
    torch.manual_seed(0)
    return MODELS.build(Config.fromfile(config).model).eval()


@pytest.mark.parametrize('config', [MAE_CONFIG, SIMMIM_CONFIG])
def test_reconstruct_shapes_and_pasted_visible_patches(config) -> None:
    model = _tiny_model(config)
    img = torch.randn(2, 3, 32, 32)
    given = None if 'mae' in config else torch.rand(2, 8, 8) < 0.6
    with torch.no_grad():
        pred, mask = model.reconstruct(img, given)
    assert pred.shape == img.shape and mask.shape == (2, 8, 8) and mask.dtype == torch.bool
    if given is None:
        assert mask.flatten(1).sum(1).tolist() == [48, 48]   # mask_ratio 0.75 of 64
    else:
        assert torch.equal(mask, given)
    pasted = paste_reconstruction(img, pred, mask)
    pix = mask.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1).expand_as(img)
    assert torch.equal(pasted[~pix], img[~pix])              # visible patches: the input
    assert torch.equal(pasted[pix], pred[pix])               # masked patches: the prediction
    assert not torch.allclose(pred[pix], img[pix])


def test_mae_reconstruct_uses_the_loss_steps() -> None:
    """Same seed: re-normalising ``reconstruct``'s pixels per patch gives the loss; a given
    mask (the same one) gives the same prediction."""
    model = _tiny_model(MAE_CONFIG)
    img = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.manual_seed(1)
        loss = model.loss(img)['loss']
        torch.manual_seed(1)
        pred, mask = model.reconstruct(img)
        again, mask2 = model.reconstruct(img, mask)
    assert torch.equal(mask, mask2)
    torch.testing.assert_close(again, pred, atol=1e-5, rtol=1e-5)
    orig = patchify(img, 4)
    mean, var = orig.mean(-1, keepdim=True), orig.var(-1, keepdim=True, unbiased=False)
    norm_pred = (patchify(pred, 4) - mean) / (var + 1e-6).sqrt()
    target = (orig - mean) / (var + 1e-6).sqrt()
    m = mask.flatten(1).float()
    expected = (((norm_pred - target) ** 2).mean(-1) * m).sum() / m.sum()
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)


def test_norm_pix_prediction_is_unnormalised_with_the_image_patch() -> None:
    # One 2 x 2 patch, one channel: pixels 1, 2, 3, 6 (mean 3, population variance 3.5).
    img = torch.tensor([[[[1., 2.], [3., 6.]]]])
    target_gen = PixelTarget(patch_size=2, norm_pix=True, eps=0.0)
    target = target_gen(img)
    torch.testing.assert_close(target, torch.tensor([[[-2., -1., 0., 3.]]]) / 3.5 ** 0.5)
    torch.testing.assert_close(prediction_to_pixels(target, img, target_gen), img)
    # a prediction of all zeros is the patch mean everywhere
    torch.testing.assert_close(prediction_to_pixels(torch.zeros(1, 1, 4), img, target_gen),
                               torch.full_like(img, 3.0))
    # on a 3-channel image of several patches, the normalised target reconstructs the image
    img = torch.rand(2, 3, 8, 8) * 255
    target_gen = PixelTarget(patch_size=4, norm_pix=True)
    torch.testing.assert_close(prediction_to_pixels(target_gen(img), img, target_gen), img,
                               atol=1e-3, rtol=1e-5)
    raw = PixelTarget(patch_size=4, norm_pix=False)
    assert torch.equal(prediction_to_pixels(raw(img), img, raw), img)


def test_mae_pictures_reach_the_backends(tmp_path) -> None:
    runner, hook, saved = train_with_hook(MAE_CONFIG, tmp_path)
    runner.model.eval()
    figure = draw_pixel_figure(runner.model, copy.deepcopy(hook._batch), scale=2, seed=0)
    assert figure.num_images == 3 and figure.masked == 3 * 48
    assert figure.labels == ('image', 'masked\ninput', 'reconstruction')
    assert np.array_equal(saved, figure.image)               # the final model's picture
    assert hook.last_mse == figure.mse
    # row 1, reconstruction panel: visible patches show the input view (mean/std undone)
    row_h = 32 * 2
    top = figure.image.shape[0] - 3 * row_h - 2 * 4
    view, masked_in, recon = (figure.image[top:top + row_h, k * (64 + 4):k * (64 + 4) + 64]
                              .astype(int) for k in range(3))
    visible = (masked_in != 128).any(axis=-1)                # masked patches are painted gray
    assert 0 < visible.mean() < 1
    assert np.abs(view - recon)[visible].max() <= 1          # rounding of the mean/std undone


def test_simmim_figure_uses_the_pipeline_masks() -> None:
    from beitlab.registry import DATASETS
    model = _tiny_model(SIMMIM_CONFIG)
    ds_cfg = copy.deepcopy(Config.fromfile(SIMMIM_CONFIG).train_dataloader.dataset)
    ds_cfg['pipeline'] = eval_pipeline(ds_cfg['pipeline'])
    ds_cfg['data_root'] = str(REPO_ROOT / ds_cfg['data_root'])
    dataset = DATASETS.build(ds_cfg)
    batch = pseudo_collate([dataset[i] for i in range(2)])
    masks = np.stack([np.asarray(s.mask) for s in batch['data_samples']])
    figure = draw_pixel_figure(model, batch, scale=1)
    assert figure.masked == int(masks.sum()) and figure.image.dtype == np.uint8


def test_hook_refuses_a_model_without_tokens_or_reconstruction() -> None:
    runner = SimpleNamespace(model=torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match='offers neither'):
        MIMVisualizationHook().before_train(runner)
