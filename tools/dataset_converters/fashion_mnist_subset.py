"""Write the first N images of each official Fashion-MNIST split as a small set of idx files.

The output has the official file names (``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``),
so every reader of the full files (``beitlab.datasets.fashion_mnist_files``) reads it as is.
This is how ``tests/data/fashion_mnist`` was made::

    python tools/dataset_converters/fashion_mnist_subset.py --src /usr/share/datasets/fashion-mnist \\
        --out tests/data/fashion_mnist --num-train 500 --num-test 250

The files are gzipped with a fixed timestamp, so rerunning the command (with ``--force``: a
non-empty ``--out`` is refused without it) gives the same bytes. Each file is replaced
atomically.
"""
import argparse
import gzip
import os
import os.path as osp
import struct
import sys

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.datasets.fashion_mnist_files import default_fashion_mnist_root, load_fashion_mnist  # noqa: E402
from beitlab.utils.atomic_io import atomic_open, check_output_path  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402


def idx_bytes(values: np.ndarray) -> bytes:
    """The idx encoding of a uint8 array: two zero bytes, type 0x08, ndim, big-endian sizes."""
    header = struct.pack('>HBB', 0, 0x08, values.ndim) + struct.pack(f'>{values.ndim}I', *values.shape)
    return header + np.ascontiguousarray(values, dtype=np.uint8).tobytes()


def write_gz_atomic(path: str, payload: bytes) -> None:
    """gzip ``payload`` into ``path`` atomically (``beitlab.utils.atomic_io``), mtime 0."""
    with atomic_open(path, 'wb') as raw, \
            gzip.GzipFile(fileobj=raw, mode='wb', mtime=0, filename='') as f:
        f.write(payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--src', default=default_fashion_mnist_root(),
                        help='folder with the four official *-ubyte.gz files')
    parser.add_argument('--out', required=True, help='output folder (must not be --src)')
    parser.add_argument('--num-train', type=int, default=500)
    parser.add_argument('--num-test', type=int, default=250)
    parser.add_argument('--force', action='store_true',
                        help='write into a non-empty --out (its four idx files are replaced)')
    args = parser.parse_args()
    if osp.realpath(args.out) == osp.realpath(args.src):
        raise ValueError(f'--out {args.out!r} is the --src folder; choose another folder so the '
                         'full files are not overwritten')
    check_output_path(args.out, [args.src], force=args.force, folder=True)
    os.makedirs(args.out, exist_ok=True)
    for split, prefix, num in (('train', 'train', args.num_train), ('test', 't10k', args.num_test)):
        images, labels = load_fashion_mnist(args.src, split)
        if not 0 < num <= len(images):
            raise ValueError(f'--num-{split} {num} must be in 1..{len(images)}')
        write_gz_atomic(osp.join(args.out, f'{prefix}-images-idx3-ubyte.gz'), idx_bytes(images[:num]))
        write_gz_atomic(osp.join(args.out, f'{prefix}-labels-idx1-ubyte.gz'),
                        idx_bytes(labels[:num].astype(np.uint8)))
        counts = np.bincount(labels[:num], minlength=10)
        print(f'{split}: {num} images, per class {counts.tolist()}')


if __name__ == '__main__':
    run_cli(main)
