"""SimpleFeaturePyramid (ViTDet Sec. 3): strides from one map, LayerNorm2d by hand, P6 by max-pool."""
import pytest
import torch
import torch.nn.functional as F

from beitlab.models.necks.simple_feature_pyramid import LayerNorm2d, SimpleFeaturePyramid


def test_strides_channels_and_extra_level():
    torch.manual_seed(0)
    neck = SimpleFeaturePyramid(in_channels=16, out_channels=8, scale_factors=(4, 2, 1, 0.5),
                                num_outs=5)
    x = torch.randn(2, 16, 8, 8)  # a stride-16 map of a 128-px image
    outs = neck((torch.randn(2, 16, 8, 8), x))  # the last backbone output is used
    assert [tuple(o.shape) for o in outs] == [(2, 8, 32, 32), (2, 8, 16, 16), (2, 8, 8, 8),
                                              (2, 8, 4, 4), (2, 8, 2, 2)]
    # P6 is a stride-2 subsample (kernel 1 max-pool) of the coarsest level
    assert torch.equal(outs[4], outs[3][:, :, ::2, ::2])
    # the x4 branch halves channels twice (ViTDet): D -> D/2 -> D/4 before the 1x1 conv
    assert neck.stages[0][1].in_channels == 4
    # the x0.5 level only sees max-pooled input: equals running its convs on F.max_pool2d(x)
    stage = neck.stages[3]
    ref = stage[1:](F.max_pool2d(x, 2, 2))
    assert torch.allclose(outs[3], ref, atol=1e-6)


def test_patch4_scales_and_errors():
    neck = SimpleFeaturePyramid(in_channels=8, out_channels=4, scale_factors=(1.0, 0.5, 0.25),
                                num_outs=4)
    outs = neck(torch.randn(1, 8, 16, 16))
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]
    with pytest.raises(ValueError, match='power of two'):
        SimpleFeaturePyramid(8, 4, scale_factors=(3.0, ))
    with pytest.raises(ValueError, match=r'\[B, D, H, W\]'):
        neck(torch.randn(1, 16, 8))


def test_layernorm2d_matches_hand_computation():
    torch.manual_seed(0)
    ln = LayerNorm2d(6)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = torch.randn(2, 6, 3, 5)
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    ref = (x - mean) / torch.sqrt(var + ln.eps) * ln.weight[:, None, None] + ln.bias[:, None, None]
    assert torch.allclose(ln(x), ref, atol=1e-5)
