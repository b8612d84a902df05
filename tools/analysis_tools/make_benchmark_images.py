"""Write an ImageNet-like JPEG folder from scikit-image's real photos (for benchmarks only).

    python tools/analysis_tools/make_benchmark_images.py --out data/bench_imagenet [--num 256]

ImageNet images average about 400 x 350 px and are JPEG-encoded, so decoding them
is a real part of the data pipeline's cost; the photos shipped with scikit-image
(astronaut, coffee, chelsea, rocket, ...) are cropped and resized to that size at
random and saved as quality-90 JPEGs under ``<out>/train/<photo name>/``, the
layout ``ImageNetStyleDataset`` reads with ``ann_file=''``. Nothing is downloaded.
"""
import argparse
import os
import os.path as osp
import sys

import cv2
import numpy as np
import skimage.data

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.utils.cli import run_cli  # noqa: E402

PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket', 'cat', 'immunohistochemistry',
          'retina', 'skin', 'motorcycle', 'colorwheel')


def load_photos() -> dict[str, np.ndarray]:
    photos = {}
    for name in PHOTOS:
        try:
            img = skimage.data.stereo_motorcycle()[0] if name == 'motorcycle' \
                else getattr(skimage.data, name)()
        except (ImportError, OSError, ValueError):
            continue  # photos that scikit-image would have to download (needs pooch)
        if img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256:
            photos[name] = img
    return photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/bench_imagenet')
    parser.add_argument('--num', type=int, default=256, help='number of JPEGs')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    photos = load_photos()
    names = sorted(photos)
    if not names:
        raise RuntimeError('no scikit-image photo could be loaded without a download')
    for i in range(args.num):
        name = names[i % len(names)]
        img = photos[name]
        h, w = img.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = img[y:y + ch, x:x + cw]
        out_w = int(rng.integers(350, 500))
        out_h = int(round(out_w * rng.uniform(0.7, 1.0)))
        crop = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA)
        folder = osp.join(args.out, 'train', name)
        os.makedirs(folder, exist_ok=True)
        cv2.imwrite(osp.join(folder, f'{i:05d}.jpg'), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f'wrote {args.num} JPEGs of {len(names)} photos under {osp.join(args.out, "train")}')


if __name__ == '__main__':
    run_cli(main)
