"""Every registered component honours the contract of its registry (``beitlab/registry.py``).

Each entry of each registry in ``ALL_REGISTRIES`` is built through its registry from a row
of ``ROWS``, tiny constructor arguments (ViT of 32 dims and 2 layers, 16 px images, 4 px
patches), and run as its registry says it is used: models forward (and backward, when they
have parameters) with finite outputs of the documented shapes, transforms on a tiny sample,
metrics on tiny predictions with known values, hooks on a runner-like object, and so on.
An entry without a row fails, naming itself: a new component adds its row here.
"""
import contextlib
import copy
import math
import os
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import mmcv
import numpy as np
import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MessageHub
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch import nn

from beitlab.registry import ALL_REGISTRIES
from beitlab.utils import register_all_modules
from tests.tools_helpers import FASHION_MNIST_SUBSET, REPO_ROOT

register_all_modules()

TINY_IMAGES = str(REPO_ROOT / 'tests' / 'data' / 'tiny_images')  # train/<2 classes>/*.png, 40 px
ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
IMG, PATCH, GRID = 16, 4, 4           # 16 px images, 4 px patches: a 4 x 4 grid
N = GRID * GRID                       # patches per image
B = 2                                 # batch


# ----------------------------------------------------------------------------- tiny parts
def vit(**kwargs) -> dict:
    return dict(type='BEiTViT', arch=ARCH, img_size=IMG, patch_size=PATCH, **kwargs)


def dvae() -> dict:
    return dict(type='DVAE', vocab_size=16, downsample=4, hidden_channels=8, embed_dim=8)


def vqkd(**kwargs) -> dict:
    return dict(type='VQKD', encoder=dict(arch=ARCH, img_size=IMG, patch_size=PATCH),
                vocab_size=16, embed_dim=8, **kwargs)


def perceptual_network() -> dict:
    return dict(arch=ARCH, img_size=IMG, patch_size=PATCH, out_type='featmap', out_indices=(0, 1))


def beit() -> dict:
    return dict(type='BEiT', backbone=vit(out_type='raw'),
                target_generator=dict(type='VisualTokenTarget', tokenizer=dvae()),
                head=dict(type='MIMHead', in_channels=32, vocab_size=16),
                data_preprocessor=dict(type='TwoViewDataPreprocessor'))


def untyped(cfg: dict) -> dict:
    """A config's constructor arguments (``type`` comes from the row's entry name)."""
    return {k: v for k, v in cfg.items() if k != 'type'}


def build_model(cfg: dict) -> nn.Module:
    torch.manual_seed(0)
    return ALL_REGISTRIES['models'].build(cfg)


def images(seed: int = 0, size: int = IMG) -> torch.Tensor:
    """``[B, 3, size, size]`` float in [0, 1] (a tokenizer's input range)."""
    return torch.rand(B, 3, size, size, generator=torch.Generator().manual_seed(seed))


def masks(seed: int = 0) -> torch.Tensor:
    """``[B, GRID, GRID]`` bool, half of each image masked."""
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(N, generator=gen) < N // 2 for _ in range(B)]).view(B, GRID, GRID)


def mask_samples(mask: torch.Tensor) -> List[BaseDataElement]:
    out = []
    for m in mask:
        sample = BaseDataElement()
        sample.mask = m
        out.append(sample)
    return out


def label_samples(labels: List[int]) -> List[BaseDataElement]:
    return [BaseDataElement(gt_label=torch.tensor([label])) for label in labels]


def uint8_image(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def two_view_pipeline() -> List[dict]:
    return [dict(type='LoadImageChecked'),
            dict(type='TwoViewRandomResizedCrop', size=IMG, second_size=IMG),
            dict(type='GenerateMask', mask_generator=dict(type='RandomMaskGenerator',
                                                          input_size=GRID, mask_ratio=0.5)),
            dict(type='PackTwoViewInputs')]


def labelled_set() -> dict:
    """The 8 tiny images (2 classes), 16 px, packed with their labels."""
    return dict(type='ImageNetStyleDataset', data_root=TINY_IMAGES, data_prefix=dict(img_path='train'),
                pipeline=[dict(type='LoadImageChecked'), dict(type='ResizeEdge', scale=IMG),
                          dict(type='PackImageInputs')])


class TinyRegressor(BaseModel):
    """``y = w x + b`` with an MSE loss: the smallest mmengine model (not registered)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, mode: str = 'tensor'):
        pred = self.linear(inputs)
        return {'loss': ((pred - targets) ** 2).mean()} if mode == 'loss' else pred


def regression_batch(seed: int = 0) -> dict:
    x = torch.randn(4, 4, generator=torch.Generator().manual_seed(seed))
    return dict(inputs=x, targets=x.sum(1, keepdim=True))


class Recorder:
    """Stands in for a runner's logger and visualizer: records every call."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str) -> Callable:
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))

    def named(self, name: str) -> List[Tuple[tuple, dict]]:
        return [(a, k) for n, a, k in self.calls if n == name]


def fake_runner(work_dir: Path, model: Optional[nn.Module] = None, **attrs) -> SimpleNamespace:
    """The runner attributes the hooks read (mmengine ``Runner`` names)."""
    base = dict(model=model, cfg=Config(dict(default_scope='beitlab')), logger=Recorder(),
                visualizer=Recorder(), message_hub=MessageHub.get_instance(f'contract-{uuid.uuid4()}'),
                work_dir=str(work_dir), iter=0, epoch=0, max_iters=2, timestamp='contract')
    base.update(attrs)
    return SimpleNamespace(**base)


# ----------------------------------------------------------------------------- contract checks
def assert_finite(*tensors: torch.Tensor) -> None:
    for t in tensors:
        assert torch.isfinite(t.float()).all(), f'non-finite values in a tensor of shape {tuple(t.shape)}'


def backward_reaches(module: nn.Module, value: torch.Tensor) -> None:
    """``value.backward()`` gives a non-zero gradient to some trainable parameter."""
    value.backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad and p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads), 'no gradient reached the parameters'
    assert_finite(*grads)


def check_loss_dict(losses: Any, model: nn.Module) -> None:
    """The 'loss' contract: ``dict[str, Tensor]`` of finite scalars whose ``loss*`` terms
    train the model."""
    assert isinstance(losses, dict) and losses, f'expected a dict of losses, got {type(losses)}'
    assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in losses.items()), losses
    for key, value in losses.items():
        assert value.dim() == 0, f'{key} has shape {tuple(value.shape)}, expected a scalar'
        assert_finite(value)
    terms = [v for k, v in losses.items() if k.startswith('loss')]
    assert terms, f'no loss term among {sorted(losses)}'
    backward_reaches(model, sum(terms))


def check_frozen(module: nn.Module) -> None:
    assert not any(p.requires_grad for p in module.parameters()), 'a frozen part has trainable parameters'


# -- models
def check_backbone(m: nn.Module, tmp_path: Path) -> None:
    x = torch.randn(B, 3, IMG, IMG)
    outs = m(x)
    assert isinstance(outs, tuple) and len(outs) == len(m.out_indices)
    for out in outs:
        assert out.shape == (B, 32, GRID, GRID)   # out_type='featmap'
    masked = m(x, masks())
    assert len(masked) == len(outs) and not torch.allclose(masked[-1], outs[-1])  # mask tokens in
    assert_finite(*outs, *masked)
    backward_reaches(m, sum(o.square().mean() for o in outs + masked))


def check_multiscale_neck(m: nn.Module, tmp_path: Path) -> None:
    feats = tuple(torch.randn(B, 32, GRID, GRID) for _ in range(4))
    outs = m(feats)
    assert [tuple(o.shape) for o in outs] == [(B, 32, 4 * GRID, 4 * GRID), (B, 32, 2 * GRID, 2 * GRID),
                                              (B, 32, GRID, GRID), (B, 32, GRID // 2, GRID // 2)]
    assert_finite(*outs)
    backward_reaches(m, sum(o.square().mean() for o in outs))


def check_simple_feature_pyramid(m: nn.Module, tmp_path: Path) -> None:
    outs = m((torch.randn(B, 32, GRID, GRID), ))
    assert isinstance(outs, tuple)
    assert [tuple(o.shape) for o in outs] == [(B, 16, s, s) for s in (16, 8, 4, 2, 1)]
    assert_finite(*outs)
    backward_reaches(m, sum(o.square().mean() for o in outs))


def check_patch_aggregation_neck(m: nn.Module, tmp_path: Path) -> None:
    early, final = torch.randn(B, 1 + N, 32), torch.randn(B, 1 + N, 32)
    out = m(early, final, (GRID, GRID))
    assert out.shape == (B, 1 + N, 32)
    assert_finite(out)
    backward_reaches(m, out.square().mean())


def check_cls_head(m: nn.Module, tmp_path: Path) -> None:
    feats = torch.randn(B, 32)
    assert m(feats).shape == (B, 3)
    losses = m.loss(feats, label_samples([0, 2]))
    check_loss_dict(losses, m)
    preds = m.predict(feats)
    assert len(preds) == B
    torch.testing.assert_close(preds[0].pred_score.sum(), torch.tensor(1.0))
    assert preds[0].pred_label.shape == (1, )


def check_mim_head(m: nn.Module, tmp_path: Path) -> None:
    feats, mask = torch.randn(B, 1 + N, 32), masks().flatten(1)
    assert m(feats, mask).shape == (int(mask.sum()), 16)      # logits of the masked patches
    check_loss_dict(m.loss(feats, torch.randint(0, 16, (B, N)), mask), m)


def check_patch_regression_head(m: nn.Module, tmp_path: Path) -> None:
    feats, mask = torch.randn(B, N, 32), masks()
    assert m(feats).shape == (B, N, 48)
    check_loss_dict(m.loss(feats, torch.randn(B, N, 48), mask), m)


def check_mae_decoder(m: nn.Module, tmp_path: Path) -> None:
    visible = 4
    latent = torch.randn(B, 1 + visible, 32)
    ids_restore = torch.argsort(torch.rand(B, N), dim=1)
    assert m(latent, ids_restore).shape == (B, N, PATCH * PATCH * 3)
    mask = ids_restore >= visible
    check_loss_dict(m.loss(latent, torch.randn(B, N, 48), mask, ids_restore), m)


def check_soft_target_ce(m: nn.Module, tmp_path: Path) -> None:
    logits = torch.randn(B, 3, requires_grad=True)
    for target in (torch.tensor([0, 2]), torch.softmax(torch.randn(B, 3), 1)):
        loss = m(logits, target)
        assert loss.dim() == 0 and loss > 0
        assert_finite(loss)
    loss.backward()
    assert logits.grad.abs().sum() > 0


def check_perceptual_loss(m: nn.Module, tmp_path: Path) -> None:
    check_frozen(m)
    target = images()
    assert m(target, target) == 0
    pred = (target + 0.1 * torch.randn_like(target)).requires_grad_()
    loss = m(pred, target)
    assert loss.dim() == 0 and loss > 0
    loss.backward()
    assert pred.grad.abs().sum() > 0


def check_cls_preprocessor(m: nn.Module, tmp_path: Path) -> None:
    imgs = [torch.from_numpy(uint8_image(IMG, IMG, s).transpose(2, 0, 1).copy()) for s in range(B)]
    out = m(dict(inputs=imgs, data_samples=label_samples([0, 1])), False)
    expected = (torch.stack(imgs).float().flip(1) - 127.5) / 64.0   # BGR -> RGB, normalised
    torch.testing.assert_close(out['inputs'], expected)
    assert len(out['data_samples']) == B


def check_two_view_preprocessor(m: nn.Module, tmp_path: Path) -> None:
    from beitlab.registry import TRANSFORMS
    crop = TRANSFORMS.build(dict(type='TwoViewRandomResizedCrop', size=IMG, second_size=8))
    mask = TRANSFORMS.build(dict(type='GenerateMask', mask_generator=dict(
        type='RandomMaskGenerator', input_size=GRID, mask_ratio=0.5)))
    pack = TRANSFORMS.build(dict(type='PackTwoViewInputs'))
    samples = [pack(mask(crop(dict(img=uint8_image(seed=s))))) for s in range(B)]
    out = m(pseudo_collate(samples), True)
    img_vit, img_tok = out['inputs']
    assert img_vit.shape == (B, 3, IMG, IMG) and img_vit.dtype == torch.float32
    assert img_tok.shape == (B, 3, 8, 8) and 0 <= img_tok.min() and img_tok.max() <= 1
    raw_tok = torch.stack([s['inputs'][1] for s in samples]).float()
    torch.testing.assert_close(img_tok, raw_tok.flip(1) / 255)
    assert out['data_samples'][0].mask.shape == (GRID, GRID)


def check_mim_algorithm(inputs: Callable[[], Any], samples: Callable[[], Any]) -> Callable:
    def check(m: nn.Module, tmp_path: Path) -> None:
        m.train()
        check_loss_dict(m(inputs(), samples(), mode='loss'), m)
        target = getattr(m, 'target_generator', None)
        if target is not None:
            check_frozen(target)
    return check


def two_views() -> List[torch.Tensor]:
    return [torch.randn(B, 3, IMG, IMG), images(1)]


def check_classifier(m: nn.Module, tmp_path: Path) -> None:
    m.train()
    x = torch.randn(B, 3, IMG, IMG)
    check_loss_dict(m(x, label_samples([0, 2]), mode='loss'), m)
    m.eval()
    preds = m(x, label_samples([0, 2]), mode='predict')
    assert len(preds) == B and preds[0].pred_score.shape == (3, )


def check_tokenizer_trainer(m: nn.Module, tmp_path: Path) -> None:
    m.train()
    check_loss_dict(m(images(), None, mode='loss'), m)
    m.eval()
    with torch.no_grad():
        assert m(images(), None, mode='tensor').shape == (B, GRID, GRID)
        preds = m(images(), None, mode='predict')
    assert preds[0].pred_img.shape == preds[0].gt_img.shape == (3, IMG, IMG)


# -- tokenizers, targets, masks
def check_tokenizer(trainable: bool) -> Callable:
    def check(tok: nn.Module, tmp_path: Path) -> None:
        assert isinstance(tok.vocab_size, int) and isinstance(tok.downsample, int)
        tokens = tok.get_tokens(images())
        side = IMG // tok.downsample
        assert tokens.shape == (B, side, side) and tokens.dtype == torch.int64
        assert 0 <= int(tokens.min()) and int(tokens.max()) < tok.vocab_size
        with pytest.raises(ValueError):            # the input contract: RGB in [0, 1]
            tok.get_tokens(images() * 255)
        assert hasattr(tok, 'loss') == trainable
        if trainable:
            tok.train()
            check_loss_dict(tok.loss(images()), tok)
    return check


def check_target(kind: str, channels: int = 0) -> Callable:
    def check(target: nn.Module, tmp_path: Path) -> None:
        check_frozen(target)
        out = target(images())
        if kind == 'tokens':
            assert out.shape == (B, N) and out.dtype == torch.int64
        else:
            assert out.shape == (B, N, channels) and out.dtype == torch.float32
            assert_finite(out)
    return check


def check_mask_generator(count: int) -> Callable:
    def check(gen: Any, tmp_path: Path) -> None:
        assert tuple(gen.input_size) == (GRID, GRID) and gen.num_patches == N
        for _ in range(3):
            mask = gen()
            assert isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.shape == (GRID, GRID)
            assert mask.sum() == count
    return check


# -- datasets, transforms
def check_dataset(labelled: bool) -> Callable:
    def check(ds: Any, tmp_path: Path) -> None:
        assert len(ds) == 8
        infos = [ds.get_data_info(i) for i in range(len(ds))]
        assert all(os.path.isfile(info['img_path']) for info in infos)
        if labelled:
            assert sorted({info['gt_label'] for info in infos}) == [0, 1]
            assert all(isinstance(info['gt_label'], int) for info in infos)
        item = ds[0]
        assert item['inputs'].shape == (3, 40, 40) and item['inputs'].dtype == torch.uint8
    return check


def sample() -> dict:
    img = uint8_image()
    return dict(img=img, img_path='tiny.png', ori_shape=img.shape[:2], img_shape=img.shape[:2],
                gt_label=1)


def check_in_memory_dataset(ds: Any, tmp_path: Path) -> None:
    """Images in memory: ``img`` [H, W, 3] uint8 (a new array per call) and int labels."""
    assert len(ds) == 8
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert all(info['img'].shape == (28, 28, 3) and info['img'].dtype == np.uint8 for info in infos)
    assert all(isinstance(info['gt_label'], int) for info in infos)
    assert ds.get_data_info(0)['img'] is not infos[0]['img']
    item = ds[0]
    assert item['inputs'].shape == (3, 28, 28) and item['inputs'].dtype == torch.uint8


def check_image_transform(shape: Optional[Tuple[int, ...]] = None, changes: bool = True) -> Callable:
    """Output dict with an ``img`` uint8 of ``shape`` (default: unchanged)."""
    def check(t: Callable, tmp_path: Path) -> None:
        np.random.seed(0)
        results = sample()
        before = results['img'].copy()
        out = t(results)
        assert isinstance(out, dict)
        assert out['img'].dtype == np.uint8 and out['img'].shape == (shape or before.shape)
        if changes and out['img'].shape == before.shape:
            assert not np.array_equal(out['img'], before)
    return check


def check_load_image(t: Callable, tmp_path: Path) -> None:
    path = os.path.join(TINY_IMAGES, 'train', 'objects', 'coffee_0.png')
    out = t(dict(img_path=path))
    assert out['img'].shape == (40, 40, 3) and out['img'].dtype == np.uint8
    assert out['ori_shape'] == (40, 40)
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'not an image')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert t(dict(img_path=str(bad))) is None                 # skip_corrupt=True
    assert any(str(bad) in str(w.message) for w in caught)
    assert t.reset_num_skipped() == 1


def check_pack_image(t: Callable, tmp_path: Path) -> None:
    out = t(sample())
    assert out['inputs'].shape == (3, 24, 32) and out['inputs'].dtype == torch.uint8
    assert out['data_samples'].gt_label.tolist() == [1]
    assert out['data_samples'].img_path == 'tiny.png'


def check_two_view_crop(t: Callable, tmp_path: Path) -> None:
    out = t(sample())
    assert out['img'].shape == (IMG, IMG, 3) and out['img_tok'].shape == (8, 8, 3)
    x1, y1, x2, y2 = out['crop_bbox']
    assert 0 <= x1 < x2 <= 32 and 0 <= y1 < y2 <= 24


def check_generate_mask(t: Callable, tmp_path: Path) -> None:
    out = t(sample())
    assert out['mask'].shape == (GRID, GRID) and out['mask'].dtype == np.bool_
    assert out['mask'].sum() == N // 2


def check_pack_two_view(t: Callable, tmp_path: Path) -> None:
    results = dict(sample(), img=uint8_image(IMG, IMG), img_tok=uint8_image(8, 8),
                   mask=masks()[0].numpy())
    out = t(results)
    vit_view, tok_view = out['inputs']
    assert vit_view.shape == (3, IMG, IMG) and tok_view.shape == (3, 8, 8)
    assert out['data_samples'].mask.dtype == torch.bool
    assert torch.equal(out['data_samples'].mask, masks()[0])


def check_mim_collate(collate: Callable, tmp_path: Path) -> None:
    """``default_collate``'s batch, with the masks in one storage (one shared-memory segment
    when a worker sends the batch)."""
    pack = ALL_REGISTRIES['transforms'].build(dict(type='PackTwoViewInputs'))
    items = [pack(dict(sample(), img=uint8_image(IMG, IMG, s), img_tok=uint8_image(8, 8, s),
                       mask=masks(s)[0].numpy())) for s in range(B)]
    from mmengine.dataset import default_collate
    ref = default_collate(copy.deepcopy(items))
    out = collate(items)
    assert [v.shape for v in out['inputs']] == [(B, 3, IMG, IMG), (B, 3, 8, 8)]
    for a, b in zip(out['inputs'], ref['inputs']):
        assert torch.equal(a, b)
    got = [s.mask for s in out['data_samples']]
    assert all(m.dtype == torch.bool and m.shape == (GRID, GRID) for m in got)
    assert all(torch.equal(m, r.mask) for m, r in zip(got, ref['data_samples']))
    assert len({m.untyped_storage().data_ptr() for m in got}) == 1


# -- metrics
def check_accuracy(metric: Any, tmp_path: Path) -> None:
    scores = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5]])
    labels = [0, 1, 1, 0]          # top-1 right once in 4 ... top-2 right three times in 4
    metric.process(None, [dict(pred_score=s, gt_label=torch.tensor(label))
                          for s, label in zip(scores, labels)])
    out = metric.compute_metrics(metric.results)
    assert out == pytest.approx({'top1': 25.0, 'top2': 75.0})
    assert all(isinstance(v, float) for v in out.values())


def check_reconstruction_metric(metric: Any, tmp_path: Path) -> None:
    gt = torch.zeros(3, 4, 4)
    metric.process(None, [dict(gt_img=gt, pred_img=gt + 0.1, tokens=torch.tensor([0, 1, 1, 1]))])
    out = metric.compute_metrics(metric.results)
    assert out['mse'] == pytest.approx(0.01)
    assert out['psnr'] == pytest.approx(20.0)
    assert out['usage'] == pytest.approx(0.5)            # 2 of the 4 codes
    assert all(isinstance(v, float) for v in out.values())


# -- hooks
def beit_losses(model: nn.Module) -> Tuple[Dict[str, torch.Tensor], List[torch.Tensor]]:
    model.train()
    torch.manual_seed(3)
    losses = model(two_views(), mask_samples(masks()), mode='loss')
    model.zero_grad()
    losses['loss'].backward()
    return {k: v.detach() for k, v in losses.items()}, \
        [p.grad.clone() for p in model.parameters() if p.grad is not None]


def check_model_transform_hook(marked: Callable[[nn.Module], List[nn.Module]]) -> Callable:
    """``before_run`` changes how the named modules run, not what the model computes."""
    def check(hook: Any, tmp_path: Path) -> None:
        model = build_model(beit())
        ref_losses, ref_grads = beit_losses(model)
        hook.before_run(fake_runner(tmp_path, model))
        assert marked(model), 'the hook changed no module'
        losses, grads = beit_losses(model)
        torch.testing.assert_close(losses, ref_losses, rtol=1e-5, atol=1e-5)
        for a, b in zip(grads, ref_grads):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    return check


def check_corrupt_image_report(hook: Any, tmp_path: Path) -> None:
    from beitlab.registry import TRANSFORMS
    load = TRANSFORMS.build(dict(type='LoadImageChecked', skip_corrupt=True))
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert load(dict(img_path=str(bad))) is None
    loader = SimpleNamespace(dataset=SimpleNamespace(pipeline=SimpleNamespace(transforms=[load])))
    runner = fake_runner(tmp_path, train_dataloader=loader)
    hook.after_train_epoch(runner)
    ((args, _), ) = runner.logger.named('warning')
    assert 'skipped 1 corrupt image' in args[0]
    assert load.num_skipped == 0
    hook.after_train_epoch(runner)                    # nothing more skipped: nothing logged
    assert len(runner.logger.named('warning')) == 1


def check_knn_monitor(hook: Any, tmp_path: Path) -> None:
    model = build_model(beit())
    runner = fake_runner(tmp_path, model)
    hook.before_train(runner)
    metrics = hook.evaluate(runner, step=1)
    assert set(metrics) == {'knn/top1_layer1', 'knn/top1_layer1_mean', 'knn/top1_layer2',
                            'knn/top1_layer2_mean', 'knn/time_s'}
    # the bank and the queries are the same 8 images: with k=1 each finds itself
    assert all(metrics[k] == pytest.approx(1.0) for k in metrics if k != 'knn/time_s')
    ((args, kwargs), ) = runner.visualizer.named('add_scalars')
    assert args[0] == metrics and kwargs['step'] == 1
    hook.after_train_iter(runner, 0)                  # interval 1: every iteration
    assert len(hook.history) == 2


def check_mim_visualization(hook: Any, tmp_path: Path) -> None:
    model = build_model(beit())
    runner = fake_runner(tmp_path, model)
    hook.before_train(runner)
    hook.after_train_iter(runner, 0)
    ((args, kwargs), ) = runner.visualizer.named('add_image')
    name, image = args
    assert name == 'mim' and kwargs['step'] == 1
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert 0.0 <= hook.last_accuracy <= 1.0
    assert model.training                             # drawing restores the training flags


class BatchRecorder(nn.Module):
    """Stands in for the model of a training loop: records the batches it is stepped on."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: List[list] = []

    def train_step(self, data: torch.Tensor, optim_wrapper: Any = None) -> dict:
        self.batches.append(data.tolist())
        return {}


def shuffled_loader() -> torch.utils.data.DataLoader:
    """10 items in batches of 4: a new pass over the data every 3 batches."""
    from mmengine.dataset import DefaultSampler
    items = list(range(10))
    return torch.utils.data.DataLoader(items, batch_size=4, sampler=DefaultSampler(items, seed=0))


def loop_args() -> dict:
    runner = fake_runner(Path('.'), BatchRecorder(), call_hook=lambda *a, **k: None, val_loop=None,
                         optim_wrapper=None)
    return dict(runner=runner, dataloader=shuffled_loader(), max_iters=8)


def check_iter_train_loop(loop: Any, tmp_path: Path) -> None:
    """``run()`` steps the model ``max_iters`` times on the batches mmengine's
    ``IterBasedTrainLoop`` would draw (its pauses between passes patched out) and returns it."""
    from unittest import mock

    from mmengine.runner.loops import _InfiniteDataloaderIterator
    with mock.patch('mmengine.runner.loops.time.sleep'):
        reference = _InfiniteDataloaderIterator(shuffled_loader())
        expected = [next(reference).tolist() for _ in range(8)]
    assert loop.run() is loop.runner.model
    assert loop.runner.model.batches == expected and loop.iter == 8

def check_nonfinite_guard(hook: Any, tmp_path: Path) -> None:
    model = TinyRegressor()
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    runner = fake_runner(tmp_path, model, optim_wrapper=optim_wrapper)
    hook.before_train(runner)
    before = [p.detach().clone() for p in model.parameters()]
    nan_loss = model(**regression_batch(), mode='loss')['loss'] * float('nan')
    optim_wrapper.update_params(nan_loss)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), 'a NaN step was applied'
    outputs = dict(loss=nan_loss.detach())
    hook.after_train_iter(runner, 0, outputs=outputs)
    assert hook.skipped == 1 and hook.consecutive == 1 and 'loss' not in outputs
    optim_wrapper.update_params(model(**regression_batch(), mode='loss')['loss'])
    hook.after_train_iter(runner, 1, outputs={})
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert hook.consecutive == 0
    hook.after_train(runner)
    assert type(optim_wrapper) is OptimWrapper       # the guard is removed


def check_reconstruction_vis(hook: Any, tmp_path: Path) -> None:
    model = build_model(dict(type='TokenizerTrainer', tokenizer=dvae(), data_preprocessor=dict(
        type='ImgDataPreprocessor', mean=[0.] * 3, std=[255.] * 3, bgr_to_rgb=True)))
    batch = dict(inputs=[torch.from_numpy(uint8_image(IMG, IMG, s).transpose(2, 0, 1).copy())
                         for s in range(B)])
    runner = fake_runner(tmp_path, model, val_dataloader=[batch], iter=3)
    hook.after_val_epoch(runner)
    path = tmp_path / 'vis' / 'recon_iter_3.png'
    assert hook.last_file == str(path) and path.is_file()
    grid = mmcv.imread(str(path))
    assert grid.ndim == 3 and grid.shape[0] >= IMG and grid.shape[1] >= 2 * IMG


def check_atomic_checkpoint(hook: Any, tmp_path: Path) -> None:
    batches = [regression_batch(s) for s in range(4)]
    runner = Runner(
        model=TinyRegressor(), work_dir=str(tmp_path), experiment_name=f'contract-{uuid.uuid4()}',
        train_dataloader=torch.utils.data.DataLoader(batches, batch_size=None),
        train_cfg=dict(by_epoch=False, max_iters=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)), default_scope='beitlab',
        default_hooks=dict(checkpoint=hook, logger=None, timer=None, param_scheduler=None,
                           sampler_seed=None))
    runner.train()
    # max_keep_ckpts=1: the second checkpoint replaced the first, each read back (verify='load')
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith('.pth')) == ['iter_2.pth']
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_2.pth')
    assert not [p for p in os.listdir(tmp_path) if '.tmp' in p]


# -- optimisation, wrappers, visualizers
def check_autocast_wrapper(ow: Any, tmp_path: Path) -> None:
    weight, bias = ow.optimizer.param_groups[0]['params']     # a Linear(4, 4) (autocast_args)
    with ow.optim_context(nn.Module()):
        out = torch.nn.functional.linear(torch.randn(B, 4), weight, bias)
    assert out.dtype == torch.bfloat16
    before = weight.detach().clone()
    ow.update_params(out.float().square().mean())
    assert weight.dtype == torch.float32 and not torch.equal(before, weight)


def autocast_args() -> dict:
    return dict(dtype='bfloat16', optimizer=torch.optim.SGD(nn.Linear(4, 4).parameters(), lr=0.1))


def tiny_classifier() -> nn.Module:
    return build_model(dict(type='ImageClassifier', backbone=vit(out_type='avg_featmap'),
                            head=dict(type='ClsHead', num_classes=3, in_channels=32)))


def check_param_groups(model: nn.Module, ow: Any) -> List[dict]:
    """Every trainable parameter in exactly one group, weight decay 0 exactly for the 1-D ones,
    the relative position bias tables and the backbone's ``no_weight_decay()`` names."""
    assert isinstance(ow, OptimWrapper)
    groups = ow.optimizer.param_groups
    grouped = [id(p) for g in groups for p in g['params']]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    assert len(set(grouped)) == len(grouped), 'a parameter is in two groups'
    exempt = {f'backbone.{name}' for name in model.backbone.no_weight_decay()}
    for g in groups:
        for param, name in zip(g['params'], g['param_names']):
            no_decay = param.ndim <= 1 or name in exempt or name.endswith('relative_position_bias_table')
            assert (g['weight_decay'] == 0) == no_decay, (name, g['group_name'], g['weight_decay'])
    return groups


def check_layer_decay(ctor: Any, tmp_path: Path) -> None:
    model = tiny_classifier()
    groups = check_param_groups(model, ctor(model))
    for g in groups:                                  # one group per (layer, decay) rule
        assert g['lr'] == pytest.approx(1e-3 * 0.5 ** (2 + 1 - g['layer_id']))
    assert {g['layer_id'] for g in groups} == {0, 1, 2, 3}


def check_no_decay(ctor: Any, tmp_path: Path) -> None:
    model = tiny_classifier()
    groups = check_param_groups(model, ctor(model))
    assert sorted(g['group_name'] for g in groups) == ['decay', 'no_decay']
    assert all(g['lr'] == pytest.approx(1e-3) for g in groups)
    assert {g['weight_decay'] for g in groups} == {0.0, 0.05}


@contextlib.contextmanager
def one_process_group(tmp_path: Path) -> Iterator[None]:
    """A gloo group of this process alone, for the distributed wrappers."""
    assert not dist.is_initialized(), 'a process group is already initialised'
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "pg"}', rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def check_cpu_ddp(wrapper: Any, tmp_path: Path) -> None:
    assert is_model_wrapper(wrapper) and isinstance(wrapper.module, TinyRegressor)
    model = wrapper.module
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = model.linear.weight.detach().clone()
    log_vars = wrapper.train_step(regression_batch(), ow)
    assert set(log_vars) == {'loss'} and math.isfinite(float(log_vars['loss']))
    assert not torch.equal(before, model.linear.weight)


def check_mim_visualizer(vis: Any, tmp_path: Path) -> None:
    view = uint8_image(IMG, IMG)
    mask = masks()[0].numpy()
    correct = np.zeros_like(mask)
    row = vis.draw_mim_row(view, mask, correct)
    side = IMG * 2                                    # scale=2
    assert row.shape == (side, 3 * side + 2 * 4, 3) and row.dtype == np.uint8
    grid = vis.stack_rows([row, row])
    assert grid.shape == (2 * side + 4, row.shape[1], 3)


# ----------------------------------------------------------------------------- the table
@dataclass
class Row:
    """One registry entry: its tiny constructor arguments (``args``, or a function that makes
    them) and the check of its registry's contract (``check(obj, tmp_path)``); ``context``
    (``context(tmp_path)``) wraps building and checking."""
    args: Union[dict, Callable[[], dict]]
    check: Callable[[Any, Path], None]
    context: Optional[Callable[[Path], Any]] = field(default=None)


def _attr(name: str) -> Callable[[nn.Module], List[nn.Module]]:
    return lambda model: [m for m in model.modules() if getattr(m, name, None)]


ROWS: Dict[str, Dict[str, Row]] = {
    'models': {
        'BEiTViT': Row(untyped(vit(out_type='featmap', out_indices=(0, 1))), check_backbone),
        'ViTMultiScaleNeck': Row(dict(embed_dims=32), check_multiscale_neck),
        'SimpleFeaturePyramid': Row(dict(in_channels=32, out_channels=16, num_outs=5),
                                    check_simple_feature_pyramid),
        'PatchAggregationNeck': Row(dict(embed_dims=32, num_heads=2, feedforward_channels=64,
                                         num_layers=1), check_patch_aggregation_neck),
        'ClsHead': Row(dict(num_classes=3, in_channels=32), check_cls_head),
        'MIMHead': Row(dict(in_channels=32, vocab_size=16), check_mim_head),
        'PatchRegressionHead': Row(dict(in_channels=32, out_channels=48), check_patch_regression_head),
        'MAEDecoder': Row(dict(grid=GRID, patch_size=PATCH, embed_dims=32, decoder_embed_dims=16,
                               decoder_depth=1, decoder_num_heads=2), check_mae_decoder),
        'SoftTargetCrossEntropyLoss': Row(dict(label_smoothing=0.1), check_soft_target_ce),
        'PerceptualLoss': Row(dict(network=perceptual_network()), check_perceptual_loss),
        'ClsDataPreprocessor': Row(dict(mean=[127.5] * 3, std=[64.] * 3), check_cls_preprocessor),
        'TwoViewDataPreprocessor': Row(dict(), check_two_view_preprocessor),
        'BEiT': Row(untyped(beit()),
                    check_mim_algorithm(two_views, lambda: mask_samples(masks()))),
        'BEiTv2': Row(dict(backbone=vit(out_type='raw', out_indices=(0, 1), use_shared_rel_pos_bias=True),
                           target_generator=dict(type='VisualTokenTarget', tokenizer=vqkd(teacher_dims=32)),
                           neck=dict(type='PatchAggregationNeck', embed_dims=32, num_heads=2,
                                     feedforward_channels=64, num_layers=1),
                           head=dict(type='MIMHead', in_channels=32, vocab_size=16)),
                      check_mim_algorithm(two_views, lambda: mask_samples(masks()))),
        'MAE': Row(dict(mask_ratio=0.75, backbone=vit(out_type='raw'),
                        head=dict(type='MAEDecoder', grid=GRID, patch_size=PATCH, embed_dims=32,
                                  decoder_embed_dims=16, decoder_depth=1, decoder_num_heads=2)),
                   check_mim_algorithm(lambda: torch.randn(B, 3, IMG, IMG), lambda: None)),
        'SimMIM': Row(dict(backbone=vit(out_type='raw'),
                           target_generator=dict(type='PixelTarget', patch_size=PATCH, norm_pix=False),
                           head=dict(type='PatchRegressionHead', in_channels=32, out_channels=48)),
                      check_mim_algorithm(two_views, lambda: mask_samples(masks()))),
        'MaskFeat': Row(dict(backbone=vit(out_type='raw'),
                             target_generator=dict(type='HOGTarget', patch_size=PATCH, cell_size=4,
                                                   gaussian_window=4),
                             head=dict(type='PatchRegressionHead', in_channels=32, out_channels=27,
                                       loss='l2')),
                        check_mim_algorithm(two_views, lambda: mask_samples(masks()))),
        'ImageClassifier': Row(dict(backbone=vit(out_type='avg_featmap'),
                                    head=dict(type='ClsHead', num_classes=3, in_channels=32)),
                               check_classifier),
        'TokenizerTrainer': Row(dict(tokenizer=dvae()), check_tokenizer_trainer),
    },
    'tokenizers': {
        'DALLEEncoder': Row(dict(vocab_size=16, hidden_channels=8, group_count=4, blocks_per_group=1),
                            check_tokenizer(trainable=False)),
        'DVAE': Row(untyped(dvae()), check_tokenizer(trainable=True)),
        'PerceptualDVAE': Row(dict(vocab_size=16, downsample=4, hidden_channels=8, embed_dim=8,
                                   perceptual_loss=dict(network=perceptual_network())),
                              check_tokenizer(trainable=True)),
        'VQKD': Row(untyped(vqkd(teacher=untyped(vit(out_type='featmap')))),
                    check_tokenizer(trainable=True)),
    },
    'target_generators': {
        'PixelTarget': Row(dict(patch_size=PATCH), check_target('features', PATCH * PATCH * 3)),
        'HOGTarget': Row(dict(patch_size=PATCH, cell_size=4, gaussian_window=4),
                         check_target('features', 27)),
        'VisualTokenTarget': Row(dict(tokenizer=dvae()), check_target('tokens')),
    },
    'mask_generators': {
        'BlockwiseMaskGenerator': Row(dict(input_size=GRID, num_masking_patches=6, min_num_patches=2,
                                           exact=True), check_mask_generator(6)),
        'RandomMaskGenerator': Row(dict(input_size=GRID, mask_ratio=0.5), check_mask_generator(8)),
        'SimMIMMaskGenerator': Row(dict(img_size=IMG, mask_patch_size=8, model_patch_size=PATCH,
                                        mask_ratio=0.5), check_mask_generator(8)),
    },
    'datasets': {
        'UnlabeledImageFolder': Row(dict(data_root=TINY_IMAGES, data_prefix=dict(img_path='train'),
                                         pipeline=[dict(type='LoadImageChecked'),
                                                   dict(type='PackImageInputs')]),
                                    check_dataset(labelled=False)),
        'ImageNetStyleDataset': Row(dict(data_root=TINY_IMAGES, data_prefix=dict(img_path='train'),
                                         pipeline=[dict(type='LoadImageChecked'),
                                                   dict(type='PackImageInputs')]),
                                    check_dataset(labelled=True)),
        'FashionMNISTDataset': Row(dict(data_root=str(FASHION_MNIST_SUBSET), num_samples=8,
                                        pipeline=[dict(type='PackImageInputs')]),
                                   check_in_memory_dataset),
    },
    'transforms': {
        'LoadImageChecked': Row(dict(skip_corrupt=True), check_load_image),
        'ColorJitter': Row(dict(), check_image_transform()),
        'RandAugment': Row(dict(num_ops=2, op_prob=1.0), check_image_transform()),
        'RandomErasing': Row(dict(prob=1.0), check_image_transform()),
        'RandomResizedCrop': Row(dict(size=IMG), check_image_transform((IMG, IMG, 3))),
        'ResizeEdge': Row(dict(scale=12), check_image_transform((12, 16, 3))),
        'TwoViewRandomResizedCrop': Row(dict(size=IMG, second_size=8), check_two_view_crop),
        'GenerateMask': Row(dict(mask_generator=dict(type='RandomMaskGenerator', input_size=GRID,
                                                     mask_ratio=0.5)), check_generate_mask),
        'PackImageInputs': Row(dict(), check_pack_image),
        'PackTwoViewInputs': Row(dict(), check_pack_two_view),
    },
    'functions': {
        'mim_collate': Row(dict(), check_mim_collate),
    },
    'metrics': {
        'Accuracy': Row(dict(topk=(1, 2)), check_accuracy),
        'ReconstructionMetric': Row(dict(vocab_size=4), check_reconstruction_metric),
    },
    'hooks': {
        'ActivationCheckpointHook': Row(dict(modules='backbone.blocks'),
                                        check_model_transform_hook(_attr('_beitlab_activation_checkpointed'))),
        'ChannelsLastHook': Row(dict(modules='target_generator'),
                                check_model_transform_hook(_attr('_beitlab_channels_last'))),
        'CompileHook': Row(dict(modules='backbone.blocks', backend='eager'),
                           check_model_transform_hook(_attr('_compiled_call_impl'))),
        'CompiledLossHook': Row(dict(backend='eager'),
                                check_model_transform_hook(_attr('_beitlab_compiled_loss'))),
        'AtomicCheckpointHook': Row(dict(interval=1, by_epoch=False, max_keep_ckpts=1, verify='load'),
                                    check_atomic_checkpoint),
        'CorruptImageReportHook': Row(dict(), check_corrupt_image_report),
        'KNNMonitorHook': Row(dict(interval=1, layers=(0, 1), pooling=('cls', 'mean'), k=1, num_train=None,
                                   num_val=None, train_dataloader=dict(batch_size=4, dataset=labelled_set()),
                                   val_dataloader=dict(batch_size=4, dataset=labelled_set())),
                              check_knn_monitor),
        'MIMVisualizationHook': Row(dict(interval=1, num_images=2, scale=1, dataset=dict(
            type='UnlabeledImageFolder', data_root=TINY_IMAGES, data_prefix=dict(img_path='train'),
            pipeline=two_view_pipeline())), check_mim_visualization),
        'NonFiniteGuardHook': Row(dict(max_consecutive=2), check_nonfinite_guard),
        'ReconstructionVisHook': Row(dict(num_images=2, out_dir='vis'), check_reconstruction_vis),
    },
    'loops': {
        'PauselessIterBasedTrainLoop': Row(loop_args, check_iter_train_loop),
    },
    'optim_wrappers': {
        'AutocastOptimWrapper': Row(autocast_args, check_autocast_wrapper),
    },
    'optim_wrapper_constructors': {
        'LayerDecayOptimWrapperConstructor': Row(
            dict(optim_wrapper_cfg=dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
                 paramwise_cfg=dict(layer_decay_rate=0.5)), check_layer_decay),
        'NoDecayOptimWrapperConstructor': Row(
            dict(optim_wrapper_cfg=dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))),
            check_no_decay),
    },
    'model_wrappers': {
        'CPUDistributedDataParallel': Row(lambda: dict(module=TinyRegressor(), device_ids=[0]),
                                          check_cpu_ddp, context=one_process_group),
    },
    'visualizers': {
        'MIMVisualizer': Row(lambda: dict(name=f'contract-{uuid.uuid4()}', scale=2), check_mim_visualizer),
    },
}


def _entries() -> List[Tuple[str, str]]:
    """Every beitlab entry (components that tests or projects/ register are not beitlab's)."""
    return sorted((key, name) for key, registry in ALL_REGISTRIES.items()
                  for name, obj in registry.module_dict.items() if obj.__module__.startswith('beitlab.'))


@pytest.mark.parametrize('key, name', _entries(), ids=lambda v: v)
def test_entry_honours_its_registry_contract(key: str, name: str, tmp_path: Path) -> None:
    row = ROWS.get(key, {}).get(name)
    if row is None:
        module = ALL_REGISTRIES[key].module_dict[name].__module__
        pytest.fail(f'registry {key!r} entry {name!r} ({module}) has no row in ROWS of '
                    f'tests/test_registry_contracts.py: add its tiny constructor arguments and a check '
                    f'of its registry contract (beitlab/registry.py)')
    context = row.context(tmp_path) if row.context else contextlib.nullcontext()
    # as in a config (default_scope = 'beitlab'): pipelines and parents resolve beitlab names
    with DefaultScope.overwrite_default_scope('beitlab'), context:
        args = row.args() if callable(row.args) else row.args
        torch.manual_seed(0)
        if key == 'functions':  # a config names a function; nothing is built
            obj = ALL_REGISTRIES[key].get(name)
            assert obj.__name__ == name and not args
        else:
            obj = ALL_REGISTRIES[key].build(dict(type=name, **args))
            assert type(obj).__name__ == name
        row.check(obj, tmp_path)


def test_every_row_names_a_registered_entry() -> None:
    entries = set(_entries())
    stale = [(key, name) for key, rows in ROWS.items() for name in rows if (key, name) not in entries]
    assert not stale, f'rows for entries no registry holds (renamed or removed?): {stale}'


def test_a_new_entry_without_a_row_fails_naming_it() -> None:
    from beitlab.registry import METRICS

    class ContractProbeMetric:
        """Registered for a moment only."""

    ContractProbeMetric.__module__ = 'beitlab.evaluation.metrics.contract_probe'
    METRICS.register_module(module=ContractProbeMetric)
    try:
        assert ('metrics', 'ContractProbeMetric') in _entries()
        with pytest.raises(pytest.fail.Exception, match="registry 'metrics' entry 'ContractProbeMetric' "
                                                        r"\(beitlab\.evaluation\.metrics\.contract_probe\)"):
            test_entry_honours_its_registry_contract('metrics', 'ContractProbeMetric', Path('.'))
    finally:
        METRICS.module_dict.pop('ContractProbeMetric')
