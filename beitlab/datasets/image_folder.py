"""Unlabeled image folder: every image file under a root, found recursively.

The pre-training data of BEiT (Sec. II of the method spec) needs no labels; this dataset
lists ``img_path`` for every image so that any folder of photos can be used.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.dataset import BaseDataset

from beitlab.registry import DATASETS

__all__ = ['IMG_EXTENSIONS', 'UnlabeledImageFolder', 'check_data_dir', 'scan_images']

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')

FASHION_MNIST_HINT = ('python tools/dataset_converters/fashion_mnist.py --out {root} '
                      '(for the Fashion-MNIST experiment)')


def check_data_dir(path: str, what: str = 'data root') -> None:
    """Raise ``FileNotFoundError`` naming ``path`` and how to create it when it is missing."""
    if not osp.isdir(path):
        raise FileNotFoundError(
            f'{what} {path!r} does not exist (cwd {os.getcwd()!r}). Put your images there, '
            f'or create it with: ' + FASHION_MNIST_HINT.format(root=path))


def scan_images(folder: str, extensions: Sequence[str] = IMG_EXTENSIONS) -> List[str]:
    """Sorted paths (relative to ``folder``) of every file under it with an image extension."""
    exts = tuple(e.lower() for e in extensions)
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(exts):
                found.append(osp.relpath(osp.join(dirpath, name), folder))
    return found


@DATASETS.register_module()
class UnlabeledImageFolder(BaseDataset):
    """Every image found recursively under ``data_root/data_prefix['img_path']``.

    Args:
        data_root: dataset root.
        data_prefix: ``dict(img_path=<sub folder>)`` searched under ``data_root``.
        extensions: file suffixes counted as images (case-insensitive).
        **kwargs: the rest of mmengine ``BaseDataset``'s arguments (``pipeline``,
            ``test_mode``, ``indices``, ``max_refetch``, ...).

    Each item is ``dict(img_path=str)``.
    """

    def __init__(self,
                 data_root: str = '',
                 data_prefix: Optional[dict] = None,
                 extensions: Sequence[str] = IMG_EXTENSIONS,
                 **kwargs) -> None:
        self.extensions = tuple(extensions)
        super().__init__(
            ann_file='', data_root=data_root,
            data_prefix=data_prefix if data_prefix is not None else dict(img_path=''), **kwargs)

    def load_data_list(self) -> List[dict]:
        folder = self.data_prefix['img_path'] or self.data_root
        check_data_dir(folder)
        files = scan_images(folder, self.extensions)
        if not files:
            raise FileNotFoundError(
                f'no image files ({", ".join(self.extensions)}) found under {folder!r}')
        return [dict(img_path=osp.join(folder, f)) for f in files]
