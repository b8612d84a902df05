"""Image loading that names the file it could not read."""
import multiprocessing
import warnings
from multiprocessing.context import get_spawning_popen
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.fileio import get

from beitlab.registry import TRANSFORMS

__all__ = ['CorruptImageError', 'LoadImageChecked']


class CorruptImageError(OSError):
    """An image file that is missing, unreadable or cannot be decoded."""


@TRANSFORMS.register_module()
class LoadImageChecked(BaseTransform):
    """Read ``results['img_path']`` into ``results['img']`` (HWC uint8, BGR like mmcv).

    A missing, unreadable or undecodable file raises :class:`CorruptImageError` naming it.
    With ``skip_corrupt=True`` it is instead skipped: a warning names the file and the
    transform returns ``None``, so mmengine's ``BaseDataset`` fetches another index (up to its
    ``max_refetch``). Skips are counted in a process-shared counter (data-loader workers
    included), read through :attr:`num_skipped` and reported and reset at the end of each
    epoch by ``CorruptImageReportHook``.

    An item that already holds its image (``img`` and no ``img_path``: a dataset that keeps
    decoded images in memory, e.g. ``FashionMNISTDataset``) passes unchanged, so one pipeline
    serves image files and in-memory images alike.

    Args:
        color_type: mmcv colour type: 'color' (3 channels, grayscale files replicated),
            'grayscale' or 'unchanged'.
        skip_corrupt: skip bad files instead of raising.
        imdecode_backend: mmcv decoding backend ('cv2' or 'pillow').

    Adds ``img`` [H, W, C] uint8, ``img_shape`` and ``ori_shape`` (H, W).
    """

    def __init__(self, color_type: str = 'color', skip_corrupt: bool = False,
                 imdecode_backend: str = 'cv2') -> None:
        self.color_type = color_type
        self.skip_corrupt = skip_corrupt
        self.imdecode_backend = imdecode_backend
        # A shared integer so that skips in forked data-loader workers reach the main process.
        self._num_skipped = multiprocessing.Value('l', 0)

    @property
    def num_skipped(self) -> int:
        """Images skipped since the last :meth:`reset_num_skipped`."""
        return int(self._num_skipped.value)

    def reset_num_skipped(self) -> int:
        """Reset the skip counter and return its value before the reset."""
        with self._num_skipped.get_lock():
            value = int(self._num_skipped.value)
            self._num_skipped.value = 0
        return value

    def _read(self, path: str) -> np.ndarray:
        try:
            img_bytes = get(path)
        except Exception as err:  # missing file, permission, backend error
            raise CorruptImageError(f'cannot read image file {path!r}: {err}') from err
        try:
            img = mmcv.imfrombytes(img_bytes, flag=self.color_type,
                                   backend=self.imdecode_backend)
        except Exception as err:
            raise CorruptImageError(f'cannot decode image file {path!r}: {err}') from err
        if img is None or img.size == 0:
            raise CorruptImageError(
                f'cannot decode image file {path!r} ({len(img_bytes)} bytes): not a valid image')
        return img

    def transform(self, results: dict) -> Optional[dict]:
        if 'img_path' not in results and isinstance(results.get('img'), np.ndarray):
            return results  # decoded already (an in-memory dataset)
        path = results['img_path']
        try:
            img = self._read(path)
        except CorruptImageError as err:
            if not self.skip_corrupt:
                raise
            with self._num_skipped.get_lock():
                self._num_skipped.value += 1
                count = self._num_skipped.value
            warnings.warn(f'skipping corrupt image {path!r} ({count} skipped so far this '
                          f'epoch): {err}', stacklevel=1)
            return None
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __getstate__(self) -> dict:
        # A shared Value can be pickled only while spawning a worker (which then shares it);
        # any other copy (deepcopy, plain pickle) gets a private counter.
        state = self.__dict__.copy()
        if get_spawning_popen() is None:
            state['_num_skipped'] = int(self._num_skipped.value)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if isinstance(self._num_skipped, int):
            self._num_skipped = multiprocessing.Value('l', self._num_skipped)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(color_type={self.color_type!r}, '
                f'skip_corrupt={self.skip_corrupt})')
