"""The relative-position table resize for a checkpoint that meets a new grid follows the
official fine-tuning code (``beit/run_class_finetuning.py``): source offsets on a
geometric-progression grid, a cubic interpolating spline evaluated at the new integer
offsets (official ``scipy.interpolate.interp2d(kind='cubic')``, which evaluates outside the
source range at the nearest edge), the three CLS entries carried over unchanged.

The reference below re-implements those steps here, with the spline built independently
(two 1-D not-a-knot cubic splines through SciPy's ``make_interp_spline``, the
tensor-product form of the same interpolant) instead of ``RectBivariateSpline``.
"""
import numpy as np
import pytest
import torch
from scipy.interpolate import make_interp_spline

from beitlab.ops.relative_position import resize_rel_pos_bias_table


def official_resize(table: torch.Tensor, src_grid: int, dst_grid: int) -> torch.Tensor:
    """The official steps for a square grid, written out from the fine-tuning script."""
    src_size, dst_size = 2 * src_grid - 1, 2 * dst_grid - 1
    extra, offsets = table[-3:], table[:-3]
    left, right = 1.01, 1.5
    while right - left > 1e-6:
        q = (left + right) / 2.0
        if 1.0 * (1.0 - q ** (src_size // 2)) / (1.0 - q) > dst_size // 2:
            right = q
        else:
            left = q
    dis, cur = [], 1
    for i in range(src_size // 2):
        dis.append(cur)
        cur += q ** (i + 1)
    x = np.array([-d for d in reversed(dis)] + [0] + dis, dtype=np.float64)
    t = dst_size // 2.0
    dx = np.clip(np.arange(-t, t + 0.1, 1.0), x[0], x[-1])  # interp2d: nearest edge outside
    heads = []
    for h in range(table.shape[1]):
        z = offsets[:, h].reshape(src_size, src_size).double().numpy()  # rows: dh, cols: dw
        along_w = make_interp_spline(x, z, k=3, axis=1)(dx)
        heads.append(torch.from_numpy(make_interp_spline(x, along_w, k=3, axis=0)(dx)).reshape(-1, 1))
    return torch.cat([torch.cat(heads, dim=1).to(table.dtype), extra], dim=0)


@pytest.mark.parametrize('dst_grid', [24, 40, 64])
def test_geometric_resize_equals_the_official_procedure(dst_grid: int) -> None:
    torch.manual_seed(dst_grid)
    table = torch.randn(27 * 27 + 3, 4)  # a 14 x 14 grid (224 px, 16 px patches), 4 heads
    resized = resize_rel_pos_bias_table(table, 14, dst_grid)
    assert resized.shape == ((2 * dst_grid - 1) ** 2 + 3, 4) and resized.dtype == table.dtype
    torch.testing.assert_close(resized, official_resize(table, 14, dst_grid), atol=1e-6, rtol=0)
    assert torch.equal(resized[-3:], table[-3:])  # CLS->patch, patch->CLS, CLS->CLS


def test_same_grid_is_the_identity_and_the_centre_is_kept() -> None:
    table = torch.randn(27 * 27 + 3, 2)
    assert resize_rel_pos_bias_table(table, 14, 14) is table
    resized = resize_rel_pos_bias_table(table, 14, 24)
    src = table[:-3].T.reshape(2, 27, 27)
    dst = resized[:-3].T.reshape(2, 47, 47)
    # offsets -1, 0, +1 sit on the same coordinates in both grids: the spline passes through them
    torch.testing.assert_close(dst[:, 22:25, 22:25], src[:, 12:15, 12:15], atol=1e-5, rtol=0)


def test_geometric_is_the_default_and_differs_from_plain_bicubic() -> None:
    torch.manual_seed(0)
    table = torch.randn(27 * 27 + 3, 2)
    geometric = resize_rel_pos_bias_table(table, 14, 24)
    bicubic = resize_rel_pos_bias_table(table, 14, 24, method='bicubic')
    torch.testing.assert_close(geometric, resize_rel_pos_bias_table(table, 14, 24, method='geometric'))
    assert (geometric - bicubic).abs().max() > 0.1
    with pytest.raises(ValueError, match="'cubic'.*expected 'geometric'"):
        resize_rel_pos_bias_table(table, 14, 24, method='cubic')


def test_rectangular_grids_resize_each_side_on_its_own() -> None:
    # a table that varies only along the width offset keeps that property, and a side whose
    # length does not change keeps its values
    dw = torch.arange(-13., 14.)
    table = torch.cat([(dw ** 2).repeat(27).reshape(-1, 1), torch.zeros(3, 1)])
    resized = resize_rel_pos_bias_table(table, (14, 14), (14, 24))[:-3].reshape(27, 47)
    assert torch.allclose(resized, resized[:1].expand(27, 47), atol=1e-5)
    table_h = torch.cat([(dw ** 2).repeat_interleave(27).reshape(-1, 1), torch.zeros(3, 1)])
    same_w = resize_rel_pos_bias_table(table_h, (14, 14), (24, 14))[:-3].reshape(47, 27)
    torch.testing.assert_close(same_w[:, 0], same_w[:, 13])
    torch.testing.assert_close(same_w[23, :], torch.zeros(27), atol=1e-5, rtol=0)
