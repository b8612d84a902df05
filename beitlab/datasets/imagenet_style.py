"""ImageNet-style classification dataset: a folder per class, or an annotation list file.

Used for fine-tuning (BEiT, Bao et al. 2021, arXiv 2106.08254, Sec. 3.1 image classification)
and for the Fashion-MNIST experiment, whose converter
(``tools/dataset_converters/fashion_mnist.py``) writes exactly this layout.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.dataset import BaseDataset

from beitlab.registry import DATASETS

from .image_folder import IMG_EXTENSIONS, check_data_dir, dataloader_key, scan_images

__all__ = ['ImageNetStyleDataset']


@DATASETS.register_module()
class ImageNetStyleDataset(BaseDataset):
    """Labelled images from ``data_root/data_prefix['img_path']``.

    Two layouts:

    - ``ann_file`` given: one line per image, ``<path relative to the image folder> <label>``.
      Class names come from ``classes`` or, when omitted, from ``meta/classes.txt`` beside the
      annotation file if it exists.
    - no ``ann_file``: one sub-folder per class, images found recursively inside each; labels
      follow ``classes``, else ``data_root/meta/classes.txt``, else the sorted folder names.

    Args:
        data_root: dataset root.
        ann_file: annotation list file, relative to ``data_root`` ('' for the folder layout).
        data_prefix: ``dict(img_path=<image folder>)`` relative to ``data_root``.
        classes: class names in label order (optional).
        extensions: file suffixes counted as images in the folder layout.
        **kwargs: the rest of mmengine ``BaseDataset``'s arguments.

    Each item is ``dict(img_path=str, gt_label=int)``.
    """

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = '',
                 data_prefix: Optional[dict] = None,
                 classes: Optional[Sequence[str]] = None,
                 extensions: Sequence[str] = IMG_EXTENSIONS,
                 **kwargs) -> None:
        self.extensions = tuple(extensions)
        metainfo = kwargs.pop('metainfo', None) or {}
        if classes is not None:
            metainfo = dict(metainfo, classes=tuple(classes))
        super().__init__(
            ann_file=ann_file, data_root=data_root, metainfo=metainfo,
            data_prefix=data_prefix if data_prefix is not None else dict(img_path=''), **kwargs)

    def _layout(self, folder: str) -> str:
        """The files this dataset expects, for error messages."""
        folder = osp.normpath(folder)
        if self.ann_file:
            return (f'the list {self.ann_file!r} ("<image path> <label>" lines) and the '
                    f'images under {folder!r}')
        return f'one sub-folder per class with its images: {osp.join(folder, "<class>", "<image>")}'

    def load_data_list(self) -> List[dict]:
        folder = self.data_prefix['img_path'] or self.data_root
        key = dataloader_key(self.test_mode)
        if self.data_root:
            check_data_dir(self.data_root, 'ImageNetStyleDataset data root', self._layout(folder),
                           config_key=key)
        check_data_dir(osp.normpath(folder), 'ImageNetStyleDataset image folder', self._layout(folder),
                       root=self.data_root or folder, config_key=key)
        data_list = self._load_ann_file(folder) if self.ann_file else \
            self._load_class_folders(folder)
        if not data_list:
            # mmengine would fail later with "need at least one array to concatenate"
            listed = (f'annotation file {self.ann_file!r} lists no images' if self.ann_file
                      else f'no image files ({", ".join(self.extensions)}) in the class '
                      f'folders under {osp.normpath(folder)!r}')
            raise ValueError(f'ImageNetStyleDataset is empty: {listed} (data root '
                             f'{self.data_root!r}, ann_file {self.ann_file!r}); point '
                             f'<train|val|test>_dataloader.dataset.data_root / ann_file at '
                             f'the data')
        return data_list

    def _load_ann_file(self, folder: str) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'ImageNetStyleDataset annotation file {self.ann_file!r} does '
                                    'not exist (expected lines "<image path relative to '
                                    f'{folder!r}> <label>"); set ann_file=\'\' to read one '
                                    'sub-folder per class instead')
        self._read_classes_file(osp.join(osp.dirname(self.ann_file), 'classes.txt'))
        data_list = []
        with open(self.ann_file) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                path, sep, label = line.rpartition(' ')
                if not sep or not label.lstrip('-').isdigit():
                    raise ValueError(f'{self.ann_file}:{lineno}: expected "<path> <label>", '
                                     f'got {line!r}')
                data_list.append(dict(img_path=osp.join(folder, path), gt_label=int(label)))
        return data_list

    def _read_classes_file(self, path: str) -> None:
        if 'classes' not in self._metainfo and osp.isfile(path):
            with open(path) as f:
                self._metainfo['classes'] = tuple(line.strip() for line in f if line.strip())

    def _load_class_folders(self, folder: str) -> List[dict]:
        # a converter's class list keeps the official label order
        self._read_classes_file(osp.join(self.data_root, 'meta', 'classes.txt'))
        classes = list(self._metainfo.get('classes') or sorted(
            d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d))))
        if not classes:
            raise FileNotFoundError(f'no class sub-folders found under {folder!r}; expected '
                                    f'{folder}/<class_name>/<image files>')
        self._metainfo['classes'] = tuple(classes)
        data_list = []
        for label, name in enumerate(classes):
            class_dir = osp.join(folder, name)
            check_data_dir(class_dir, f'class folder for {name!r}',
                           f'the images of class {name!r} (the classes come from '
                           '`classes` or meta/classes.txt)', root=self.data_root or folder,
                           config_key=dataloader_key(self.test_mode))
            data_list += [dict(img_path=osp.join(class_dir, f), gt_label=label)
                          for f in scan_images(class_dir, self.extensions)]
        return data_list
