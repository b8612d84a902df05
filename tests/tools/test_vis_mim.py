"""tools/visualization/vis_mim.py: the figure's MLM accuracy and its title and column labels."""
import importlib.util
import math

import numpy as np
import pytest
import torch

from tests.tools_helpers import REPO_ROOT

_spec = importlib.util.spec_from_file_location(
    'vis_mim', REPO_ROOT / 'tools' / 'visualization' / 'vis_mim.py')
vis_mim = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vis_mim)


def test_accuracy_counts_only_masked_patches_over_all_images():
    target = torch.tensor([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])
    pred = torch.tensor([[[1, 0], [3, 0]], [[5, 6], [0, 8]]])
    mask = torch.tensor([[[True, True], [False, False]], [[False, True], [True, True]]])
    # masked: image 0 -> (1 right, 2 wrong); image 1 -> (6 right, 7 wrong, 8 right);
    # unmasked patches (3 right, 4 wrong, 5 right) do not count
    accuracy, hits, masked = vis_mim.masked_token_accuracy(pred, target, mask)
    assert (hits, masked) == (3, 5) and accuracy == pytest.approx(3 / 5)
    # flat [B, N] token lists give the same figure
    assert vis_mim.masked_token_accuracy(pred.flatten(1), target.flatten(1),
                                         mask.flatten(1)) == (accuracy, 3, 5)


def test_accuracy_edge_cases():
    ids = torch.arange(8).view(2, 4)
    assert vis_mim.masked_token_accuracy(ids, ids, torch.ones(2, 4, dtype=torch.bool))[0] == 1.0
    accuracy, hits, masked = vis_mim.masked_token_accuracy(
        ids, ids, torch.zeros(2, 4, dtype=torch.bool))
    assert math.isnan(accuracy) and (hits, masked) == (0, 0)
    with pytest.raises(ValueError, match=r'\(2, 4\).*\(2, 3\)'):
        vis_mim.masked_token_accuracy(ids, ids, torch.ones(2, 3, dtype=torch.bool))


def test_header_names_every_column_above_it():
    panel = 128   # the demo: 32 px views upscaled 4x
    labels = vis_mim.COLUMN_LABELS
    header = vis_mim.draw_header('MLM accuracy 0.125: 24/192 masked patches predicted right '
                                 '(8 images)', labels, panel)
    sep = vis_mim.SEPARATOR
    assert header.dtype == np.uint8 and header.shape[1] == 5 * panel + 4 * sep
    # the height depends on the panel width and labels only, so the figure's size is fixed
    assert header.shape == vis_mim.draw_header('x', labels, panel).shape
    ink = header.min(axis=2) < 128
    title_band = ink[:20]
    assert title_band.any()
    for i in range(len(labels)):   # each column has its own label, inside its own width
        column = ink[26:, i * (panel + sep):i * (panel + sep) + panel]
        assert column.any(), labels[i]
    for i in range(len(labels) - 1):  # nothing is written over the gaps between columns
        gap = ink[26:, i * (panel + sep) + panel:(i + 1) * (panel + sep)]
        assert not gap.any()
