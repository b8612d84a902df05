"""Classify images with a trained model, or write their backbone features to a .npy file.

    # top-k classes of each image (a fine-tuned classifier)
    python tools/infer.py CONFIG CHECKPOINT IMAGES... [--topk 5]
    # features (any model with a BEiTViT backbone, pre-trained ones too)
    python tools/infer.py CONFIG CHECKPOINT IMAGES... --features OUT.npy \
        [--layers -1] [--pooling cls|mean|none] [--force]

IMAGES are image files or folders (every image under a folder, sorted). Images are
preprocessed as :mod:`beitlab.apis.inference` says: the config's test pipeline, or for a
pre-training config the deterministic part of its training pipeline. ``OUT.npy`` holds
``[N, D]`` (``[N, T, D]`` with ``--pooling none``) for one layer and ``[L, N, ...]`` for
several, in the order of ``--layers``; the image order is printed. An existing output is
replaced only with ``--force``.
"""
import argparse
import io
import os.path as osp
import sys
from typing import List, Optional, Sequence

import numpy as np

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from beitlab.apis import classify, extract_features, init_model  # noqa: E402
from beitlab.datasets.image_folder import scan_images  # noqa: E402
from beitlab.utils.atomic_io import atomic_write_bytes, check_output_path  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402
from beitlab.utils.runtime import ConfigOptionsAction  # noqa: E402


def expand_images(paths: Sequence[str]) -> List[str]:
    """Files as given; folders replaced by the image files under them (sorted)."""
    out = []
    for path in paths:
        if osp.isdir(path):
            found = [osp.join(path, f) for f in scan_images(path)]
            if not found:
                raise FileNotFoundError(f'no image files under the folder {path!r}')
            out += found
        elif osp.isfile(path):
            out.append(path)
        else:
            raise FileNotFoundError(f'image {path!r} does not exist')
    return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('images', nargs='+', help='image files or folders')
    parser.add_argument('--topk', type=int, default=5, help='classes printed per image')
    parser.add_argument('--features', metavar='OUT.npy', help='write features instead')
    parser.add_argument('--layers', type=int, nargs='+', default=[-1],
                        help='backbone layers (0-based, negatives from the end)')
    parser.add_argument('--pooling', choices=['cls', 'mean', 'none'], default='cls')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--force', action='store_true', help='replace an existing OUT.npy')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction)
    args = parser.parse_args(argv)

    images = expand_images(args.images)
    if args.features is not None:
        if not args.features.endswith('.npy'):
            raise ValueError(f'--features {args.features!r}: the output must be a .npy file')
        check_output_path(args.features, [args.config, args.checkpoint, *images],
                          force=args.force)
    model = init_model(args.config, args.checkpoint, args.device, args.cfg_options)

    if args.features is not None:
        feats = extract_features(model, images, layers=args.layers, pooling=args.pooling,
                                 batch_size=args.batch_size)
        array = feats[0].numpy() if len(feats) == 1 else np.stack([f.numpy() for f in feats])
        buf = io.BytesIO()
        np.save(buf, array)
        atomic_write_bytes(args.features, buf.getvalue())
        print(f'saved features {tuple(array.shape)} (layers {args.layers}, pooling '
              f'{args.pooling!r}) of {len(images)} images to {args.features}; image order:')
        for i, path in enumerate(images):
            print(f'{i}\t{path}')
        return

    result = classify(model, images, topk=args.topk, batch_size=args.batch_size)
    for i, path in enumerate(images):
        entries = []
        for j, (label, score) in enumerate(zip(result.labels[i].tolist(),
                                               result.scores[i].tolist())):
            name = result.class_names[i][j] if result.class_names else f'class {label}'
            entries.append(f'{name} ({label}) {score:.4f}')
        print(f'{path}: ' + ', '.join(entries))


if __name__ == '__main__':
    run_cli(main)
