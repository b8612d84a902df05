"""Unlabeled image folder: every image file under a root, found recursively.

The pre-training data of BEiT (Bao et al. 2021, arXiv 2106.08254, Sec. 2.5: ImageNet-1k
images without their labels) needs no labels; this dataset lists ``img_path`` for every
image so that any folder of photos can be used.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.dataset import BaseDataset

from beitlab.registry import DATASETS
from beitlab.utils.cli import HintedError

__all__ = ['IMG_EXTENSIONS', 'DataFolderNotFoundError', 'UnlabeledImageFolder', 'check_data_dir',
           'dataloader_key', 'scan_images']

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')

FASHION_MNIST_HINT = 'python tools/dataset_converters/fashion_mnist.py --out {root}'


class DataFolderNotFoundError(HintedError, FileNotFoundError):
    """A dataset's root or image folder does not exist; ``hints`` say how to fix it."""


def dataloader_key(test_mode: bool) -> str:
    """The config keys of a dataset's root: the training loader's, or the evaluation ones'
    (space-separated, as ``--cfg-options`` takes them)."""
    return ('val_dataloader.dataset.data_root test_dataloader.dataset.data_root'
            if test_mode else 'train_dataloader.dataset.data_root')


def check_data_dir(path: str, what: str = 'data root', expected: Optional[str] = None,
                   root: Optional[str] = None, config_key: Optional[str] = None) -> None:
    """Raise :class:`DataFolderNotFoundError` when the folder ``path`` is missing.

    The message names ``path`` (``what`` it is, and ``expected``, the layout that should
    be there); the hints say how to point the config at the data (``config_key``: config
    keys separated by spaces, default ``train_dataloader.dataset.data_root``) and how to
    create the Fashion-MNIST set under ``root`` (default ``path``).
    """
    if osp.isdir(path):
        return
    relative = '' if osp.isabs(path) else f' (relative to the current directory {os.getcwd()})'
    message = f'{what} {path!r} does not exist{relative}'
    if expected:
        message += f'; expected {expected}'
    options = ' '.join(f'{k}=/path/to/data' for k in (config_key or dataloader_key(False)).split())
    hints = [f'point the config at your copy: `--cfg-options {options}`',
             'or put the images there; for the Fashion-MNIST experiment, create them with '
             f'`{FASHION_MNIST_HINT.format(root=root or path)}`']
    raise DataFolderNotFoundError(message + '.', hints)


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
        key = dataloader_key(self.test_mode)
        if self.data_root and osp.normpath(folder) != osp.normpath(self.data_root):
            check_data_dir(self.data_root, 'UnlabeledImageFolder data root',
                           f'image files under {osp.normpath(folder)!r}', config_key=key)
        check_data_dir(osp.normpath(folder), 'UnlabeledImageFolder image folder',
                       'image files in it or in its sub-folders', root=self.data_root or folder,
                       config_key=key)
        files = scan_images(folder, self.extensions)
        if not files:
            raise FileNotFoundError(
                f'UnlabeledImageFolder is empty: no image files ({", ".join(self.extensions)}) '
                f'found under {folder!r} (data root {self.data_root!r}, no annotation file: '
                f'every image under the folder is used); point '
                f'<train|val|test>_dataloader.dataset.data_root at the images')
        return [dict(img_path=osp.join(folder, f)) for f in files]
