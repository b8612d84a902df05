"""MIMVisualizer paints exactly the masked patches, in the colour of their outcome."""
import numpy as np
import pytest

from beitlab.visualization.mim_visualizer import MIMVisualizer, paint_patches


def test_paint_patches_touches_only_selected_cells() -> None:
    img = np.zeros((8, 8, 3), np.uint8)
    where = np.zeros((2, 2), bool)
    where[0, 1] = True
    out = paint_patches(img, where, (200, 100, 50), 0.5)
    assert (out[:4, 4:] == [100, 50, 25]).all()
    out[:4, 4:] = 0
    assert not out.any()
    with pytest.raises(ValueError, match='whole number of patches'):
        paint_patches(np.zeros((7, 8, 3), np.uint8), where, (0, 0, 0), 1.0)


def test_row_layout_and_colours() -> None:
    vis = MIMVisualizer(name='test_mim_vis_row', scale=2)
    view = np.full((4, 4, 3), 100, np.uint8)
    mask = np.array([[True, False], [True, False]])
    correct = np.array([[True, False], [False, False]])
    row = vis.draw_mim_row(view, mask, correct)
    assert row.shape == (8, 3 * 8 + 2 * 4, 3)
    corrupted, outcome = row[:, 12:20], row[:, 24:32]
    assert (corrupted[:4, :4] == MIMVisualizer.GRAY).all() and (corrupted[:4, 4:] == 100).all()
    green = np.round(0.4 * 100 + 0.6 * np.array(MIMVisualizer.GREEN))
    red = np.round(0.4 * 100 + 0.6 * np.array(MIMVisualizer.RED))
    assert (outcome[:4, :4] == green).all() and (outcome[4:, :4] == red).all()
    assert (outcome[:, 4:] == 100).all()
    grid = vis.stack_rows([row, row])
    assert grid.shape == (2 * 8 + 4, row.shape[1], 3)
