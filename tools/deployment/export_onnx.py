"""Export a classifier or its backbone to ONNX and check it against onnxruntime.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx \
        [--part classifier|backbone] [--opset 17] [--batch-sizes 1 3] [--tolerance 1e-4] [--force]

``--part classifier`` (a fine-tuned ``ImageClassifier``): ``input [B, 3, H, W] -> logits
[B, C]``. ``--part backbone`` (the ``BEiTViT`` of any config): ``input -> output`` (or
``output0``, ``output1``, ... when ``out_indices`` names several layers), each as the
backbone's ``out_type`` formats it. The batch dimension is dynamic; H and W are those of
the config's ``img_size``. The input is the *normalised* image, as the model's data
preprocessor gives it; the mean, std and channel order to apply are stored in the file's
metadata (``mean``, ``std``, ``input_channels``).

The graph is exported with torch's TorchScript-based exporter (``dynamo=False``): the
attention's ``scaled_dot_product_attention`` with its float mask (the relative position
bias) becomes ONNX ops exactly. The file is then run by onnxruntime on the same random
inputs as PyTorch at every ``--batch-sizes`` entry; the largest absolute difference is
printed, and above ``--tolerance`` the tool fails (the file is kept for inspection).
Needs the optional packages ``onnx`` and ``onnxruntime``.
"""
import argparse
import io
import os.path as osp
import sys
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.apis import init_model  # noqa: E402
from beitlab.utils.atomic_io import atomic_write_bytes, check_output_path  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.runtime import ConfigOptionsAction  # noqa: E402

MIN_OPSET = 17


class ClassifierForExport(nn.Module):
    """``x [B, 3, H, W]`` normalised -> logits ``[B, C]`` (the classifier's tensor mode)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x, mode='tensor')


class BackboneForExport(nn.Module):
    """``x [B, 3, H, W]`` normalised -> the backbone's outputs (one tensor, or a tuple)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: Tensor):
        outs = self.backbone(x)
        return outs[0] if len(outs) == 1 else tuple(outs)


def _require(name: str):
    try:
        return __import__(name)
    except ImportError as err:
        raise ImportError(f'export_onnx needs the {name} package: pip install onnx onnxruntime '
                          f'({err})') from None


def export_part(model: nn.Module, part: str) -> nn.Module:
    """The module to export for ``--part``."""
    if part == 'classifier':
        from beitlab.models.algorithms.classifier import ImageClassifier
        if not isinstance(model, ImageClassifier):
            raise TypeError(f'--part classifier needs an ImageClassifier config, got '
                            f'{type(model).__name__}; use --part backbone for its backbone')
        return ClassifierForExport(model).eval()
    if part == 'backbone':
        return BackboneForExport(model.backbone).eval()
    raise ValueError(f"--part {part!r} is not 'classifier' or 'backbone'")


def output_names(module: nn.Module, example: Tensor) -> List[str]:
    with torch.no_grad():
        out = module(example)
    return ['output'] if isinstance(out, Tensor) else [f'output{i}' for i in range(len(out))]


def check_with_onnxruntime(path: str, module: nn.Module, input_shape: Sequence[int],
                           batch_sizes: Sequence[int], seed: int = 0) -> List[float]:
    """Largest absolute difference between onnxruntime and PyTorch at each batch size."""
    ort = _require('onnxruntime')
    onnx_model = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    name = onnx_model.get_inputs()[0].name
    gen = torch.Generator().manual_seed(seed)
    diffs = []
    for b in batch_sizes:
        x = torch.randn(b, *input_shape, generator=gen)
        with torch.no_grad():
            ref = module(x)
        ref = [ref] if isinstance(ref, Tensor) else list(ref)
        got = onnx_model.run(None, {name: x.numpy()})
        if len(got) != len(ref):
            raise RuntimeError(f'{path}: {len(got)} outputs, PyTorch gives {len(ref)}')
        diff = 0.0
        for r, g in zip(ref, got):
            if tuple(g.shape) != tuple(r.shape):
                raise RuntimeError(f'{path}: output of shape {tuple(g.shape)} at batch {b}, '
                                   f'PyTorch gives {tuple(r.shape)}')
            diff = max(diff, float((torch.from_numpy(g) - r).abs().max()))
        diffs.append(diff)
    return diffs


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="model weights; 'none' exports the initialisation")
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument('--part', choices=['classifier', 'backbone'], default='classifier')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 3],
                        help='batch sizes of the onnxruntime check')
    parser.add_argument('--tolerance', type=float, default=1e-4)
    parser.add_argument('--force', action='store_true', help='replace an existing OUT.onnx')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction)
    args = parser.parse_args(argv)
    if args.opset < MIN_OPSET:
        raise ValueError(f'--opset {args.opset}: use {MIN_OPSET} or newer')
    if any(b < 1 for b in args.batch_sizes):
        raise ValueError(f'--batch-sizes {args.batch_sizes}: every size must be >= 1')
    check_output_path(args.out, [args.config, args.checkpoint], force=args.force)
    onnx = _require('onnx')
    _require('onnxruntime')

    checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
    model = init_model(args.config, checkpoint, 'cpu', args.cfg_options)
    module = export_part(model, args.part)
    backbone = model.backbone
    input_shape = (backbone.in_channels, *backbone.img_size)
    example = torch.randn(2, *input_shape)
    outputs = output_names(module, example)
    dynamic = {'input': {0: 'batch'}, **{n: {0: 'batch'} for n in outputs}}
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, (example, ), buffer, input_names=['input'],
                          output_names=outputs, dynamic_axes=dynamic, opset_version=args.opset,
                          dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto)
    prep = model.data_preprocessor
    prep_cfg = model.cfg.model.get('data_preprocessor') or {}
    to_rgb = prep_cfg.get('to_rgb', prep_cfg.get('bgr_to_rgb', True))

    def stat(name: str) -> str:
        return str([round(float(v), 4) for v in getattr(prep, name, torch.zeros(0)).flatten()])

    meta = {'part': args.part, 'config': args.config, 'mean': stat('mean'), 'std': stat('std'),
            'input_channels': 'RGB' if to_rgb else 'as loaded (BGR)'}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value

    def check(temp_path: str) -> None:
        """onnxruntime on the written file, before it replaces ``args.out``."""
        diffs = check_with_onnxruntime(temp_path, module, input_shape, args.batch_sizes)
        for b, d in zip(args.batch_sizes, diffs):
            print(f'batch {b}: max abs diff onnxruntime vs PyTorch {d:.3e}')
        worst = max(diffs)
        if worst > args.tolerance:
            raise RuntimeError(f'{args.out}: onnxruntime differs from PyTorch by {worst:.3e} > '
                               f'--tolerance {args.tolerance:g}; nothing was written')

    # a failing export or check leaves an existing OUT.onnx as it was
    atomic_write_bytes(args.out, proto.SerializeToString(), verify=check)
    print(f'exported {args.part} of {args.config} (opset {args.opset}, dynamic batch, input '
          f'[B, {", ".join(map(str, input_shape))}], outputs {outputs}) to {args.out}')


if __name__ == '__main__':
    run_cli(main)
