"""Build-time checks shared by the mask generators: a mask that hides no patch gives a
MIM loss of 0 (or NaN) and teaches nothing; one that hides every patch leaves the model
nothing to see. Nothing here registers."""
from typing import Any, Callable

import numpy as np

from beitlab.utils.random_state import preserved_random_state

__all__ = ['check_mask_count', 'probe_masks']


def check_mask_count(name: str, setting: str, count: int, num_patches: int,
                     grid: Any) -> None:
    """Raise ``ValueError`` unless ``0 < count < num_patches``.

    Args:
        name: the generator (or algorithm) class name, for the message.
        setting: the configured value(s) that gave ``count``, e.g. ``'mask_ratio=0.0'``.
        count: patches (or mask squares) masked per sample.
        num_patches: patches (or squares) per sample.
        grid: the grid they lie on, for the message.
    """
    if count <= 0:
        raise ValueError(f'{name}: {setting} masks no patch (0 of {num_patches} on a {grid} '
                         f'grid), so the loss over masked patches is 0 and nothing is learned; '
                         f'expected between 1 and {num_patches - 1} masked')
    if count >= num_patches:
        raise ValueError(f'{name}: {setting} masks every patch ({count} of {num_patches} on a '
                         f'{grid} grid), so the model sees nothing of the image; expected '
                         f'between 1 and {num_patches - 1} masked')


def probe_masks(generator: Callable[[], Any], draws: int = 4) -> None:
    """Draw ``draws`` masks from ``generator`` (any MASK_GENERATORS callable) and raise
    ``ValueError`` naming it when none masks a patch or all mask every patch, or when a
    mask is not a 2-D array. The global ``random`` / numpy / torch states are restored, so
    the data order of a seeded run does not change."""
    with preserved_random_state():
        masks = [np.asarray(generator(), dtype=bool) for _ in range(draws)]
    name = repr(generator)
    if any(m.ndim != 2 for m in masks):
        raise ValueError(f'{name}: a mask must be a [H/P, W/P] array, got shape '
                         f'{[m.shape for m in masks if m.ndim != 2][0]}')
    if not any(m.any() for m in masks):
        raise ValueError(f'{name}: none of {draws} trial masks masks a patch, so the loss over '
                         'masked patches is 0 and nothing is learned; check its mask ratio / '
                         'count settings')
    if all(m.all() for m in masks):
        raise ValueError(f'{name}: all {draws} trial masks mask every patch, so the model sees '
                         'nothing of the image; check its mask ratio / count settings')
