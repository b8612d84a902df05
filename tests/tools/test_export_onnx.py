"""tools/deployment/export_onnx.py: the exported classifier and backbone equal PyTorch (dynamic batch)."""
import pytest
import torch

from beitlab.apis import init_model
from tests.tools_helpers import REPO_ROOT, run_tool

onnx = pytest.importorskip('onnx', reason='optional: pip install onnx onnxruntime')
ort = pytest.importorskip('onnxruntime', reason='optional: pip install onnx onnxruntime')

# 2-class tiny classifier: per-layer relative position bias, so every attention takes the
# float-mask path of scaled_dot_product_attention
CLASSIFIER = str(REPO_ROOT / 'tests/data/configs/classifier_tiny_images.py')
# BEiT v2 tiny: shared relative bias, two outputs (out_indices of two layers, raw tokens)
BACKBONE = str(REPO_ROOT / 'configs/beitv2/beitv2_vit-tiny_1xb8-2it_tiny.py')


def _checkpoint(config: str, path) -> None:
    """Random weights away from the initialisation (the classifier head starts near zero)."""
    model = init_model(config)
    gen = torch.Generator().manual_seed(0)
    state = {k: v + 0.1 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    torch.save(dict(state_dict=state), path)


@pytest.mark.parametrize('config,part,expected_outputs', [
    (CLASSIFIER, 'classifier', 1), (BACKBONE, 'backbone', 2)], ids=['classifier', 'backbone'])
def test_export_equals_pytorch_at_two_batch_sizes(tmp_path, config, part, expected_outputs) -> None:
    ckpt, out = tmp_path / 'ckpt.pth', tmp_path / f'{part}.onnx'
    _checkpoint(config, ckpt)
    proc = run_tool('deployment/export_onnx.py', config, ckpt, out, '--part', part,
                    '--batch-sizes', '1', '3')
    assert proc.stdout.count('max abs diff onnxruntime vs PyTorch') == 2
    proto = onnx.load(str(out))
    assert proto.opset_import[0].version >= 17
    assert {p.key for p in proto.metadata_props} >= {'mean', 'std', 'input_channels'}

    model = init_model(config, str(ckpt))
    onnx_model = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    assert len(onnx_model.get_outputs()) == expected_outputs
    gen = torch.Generator().manual_seed(1)
    for batch in (2, 5):                                    # sizes the export never saw
        x = torch.randn(batch, 3, 32, 32, generator=gen)
        with torch.no_grad():
            ref = model(x, mode='tensor') if part == 'classifier' else model.backbone(x)
        ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        got = onnx_model.run(None, {'input': x.numpy()})
        for r, g in zip(ref, got):
            assert tuple(g.shape) == tuple(r.shape)
            assert float((torch.from_numpy(g) - r).abs().max()) <= 1e-4
        if part == 'classifier':
            assert float(ref[0].std()) > 1e-2               # logits that are not all ~0


def test_refuses_to_overwrite_and_a_non_classifier(tmp_path) -> None:
    out = tmp_path / 'x.onnx'
    out.write_bytes(b'old')
    proc = run_tool('deployment/export_onnx.py', CLASSIFIER, 'none', out, check=False)
    assert proc.returncode == 1 and '--force' in proc.stderr and out.read_bytes() == b'old'
    proc = run_tool('deployment/export_onnx.py', BACKBONE, 'none', tmp_path / 'y.onnx', check=False)
    assert proc.returncode == 1 and '--part backbone' in proc.stderr


def test_a_failed_check_leaves_the_existing_output(tmp_path) -> None:
    out = tmp_path / 'x.onnx'
    out.write_bytes(b'old')
    proc = run_tool('deployment/export_onnx.py', CLASSIFIER, 'none', out, '--force',
                    '--tolerance', '0', check=False)
    assert proc.returncode == 1 and 'nothing was written' in proc.stderr
    assert out.read_bytes() == b'old' and sorted(p.name for p in tmp_path.iterdir()) == ['x.onnx']
