"""Frozen-feature quality of a pre-trained backbone on Fashion-MNIST: k-NN and linear probe.

    python tools/analysis_tools/frozen_features.py CONFIG CHECKPOINT \
        [--layers 3 4 5] [--pooling cls mean] [--fashion-mnist-root DIR] [--out result.json]

CONFIG gives the backbone (``model.backbone``) and the normalisation (``mean`` / ``std`` of
``model.data_preprocessor``); CHECKPOINT is loaded into that backbone strictly, as fine-tuning
loads it (:func:`beitlab.checkpoint.load_pretrained_backbone`: a beitlab MIM checkpoint, a
published one or an official BEiT file); ``none`` keeps the random initialisation of the
config's seed (the baseline frozen features are compared with). The images are the official
splits read from the idx files (60,000 train, 10,000 test), zero-padded from 28 to 32 px as
the Fashion-MNIST configs read them.

For every layer (0-based, negatives from the end) and pooling (``cls``: the CLS token,
``mean``: the mean of the patch tokens) it reports on the 10,000 test images:

- the weighted k-NN top-1 (k = 20, T = 0.07, the 60,000 training features as the bank;
  :func:`beitlab.engine.hooks.knn_monitor_hook.knn_top1`, as ``KNNMonitorHook`` logs it);
- the linear-probe top-1: a linear classifier on the standardised frozen features (train
  mean and std), AdamW (lr 1e-3, weight decay 1e-4, batch 512, ``--probe-epochs`` epochs
  with a cosine schedule), fixed hyper-parameters chosen before looking at the test set.

The table is printed; ``--out`` writes it as JSON (atomically; an existing file is refused
unless ``--force``).
"""
import argparse
import json
import os.path as osp
import sys
import time
from typing import Optional, Sequence

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.utils.cli import run_cli  # noqa: E402

POOLINGS = ('cls', 'mean')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint', help="backbone checkpoint, or 'none' for random init")
    p.add_argument('--layers', type=int, nargs='+', default=[-1])
    p.add_argument('--pooling', nargs='+', choices=POOLINGS, default=list(POOLINGS))
    p.add_argument('--fashion-mnist-root', default=None,
                   help='folder of the four idx files (default: $BEITLAB_FASHION_MNIST_ROOT '
                   "or the Debian package's folder)")
    p.add_argument('--num-train', type=int, default=None,
                   help='first N training images only (default: all 60,000)')
    p.add_argument('--probe-epochs', type=int, default=30)
    p.add_argument('--k', type=int, default=20)
    p.add_argument('--temperature', type=float, default=0.07)
    p.add_argument('--batch-size', type=int, default=500, help='feature extraction batch')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None)
    p.add_argument('--force', action='store_true')
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    from mmengine.config import Config

    from beitlab.apis.features import normalize_layers
    from beitlab.engine.hooks.knn_monitor_hook import knn_top1
    from beitlab.evaluation.frozen_features import build_backbone, extract, fashion_mnist_inputs, linear_probe
    from beitlab.utils import register_all_modules
    from beitlab.utils.atomic_io import atomic_write_text, check_output_path
    from beitlab.utils.runtime import check_config_file

    if args.out:
        check_output_path(args.out, inputs=[args.config, args.checkpoint], force=args.force)
    if args.checkpoint.lower() != 'none' and not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist (or pass none '
                                'for the random-init baseline)')
    register_all_modules()
    check_config_file(args.config)
    cfg = Config.fromfile(args.config)
    prep = cfg.model.get('data_preprocessor') or {}
    if 'mean' not in prep or 'std' not in prep:
        raise KeyError(f'{args.config}: model.data_preprocessor has no mean / std to normalise '
                       'the images with')
    backbone = build_backbone(cfg, args.checkpoint, args.seed)
    layers = sorted(set(normalize_layers(backbone, args.layers)))
    t0 = time.perf_counter()
    x_train, y_train = fashion_mnist_inputs(args.fashion_mnist_root, 'train', prep['mean'],
                                            prep['std'], args.num_train)
    x_test, y_test = fashion_mnist_inputs(args.fashion_mnist_root, 'test', prep['mean'], prep['std'])
    f_train = extract(backbone, x_train, layers, args.pooling, args.batch_size)
    f_test = extract(backbone, x_test, layers, args.pooling, args.batch_size)
    extract_s = time.perf_counter() - t0
    rows = []
    for layer in layers:
        for pooling in args.pooling:
            key = (layer, pooling)
            knn = knn_top1(f_train[key], y_train, f_test[key], y_test, args.k, args.temperature)
            probe = linear_probe(f_train[key], y_train, f_test[key], y_test, args.probe_epochs,
                                 args.seed)
            rows.append(dict(layer=layer + 1, pooling=pooling, knn_top1=100 * knn,
                             linear_top1=100 * probe))
    print(f'{args.checkpoint}: frozen {type(backbone).__name__} features, {len(y_train)} train / '
          f'{len(y_test)} test images (extraction {extract_s:.1f} s)')
    print(f'{"layer":>5}  {"pooling":<7}  {"k-NN top-1":>10}  {"linear top-1":>12}')
    for r in rows:
        print(f'{r["layer"]:>5}  {r["pooling"]:<7}  {r["knn_top1"]:>10.2f}  {r["linear_top1"]:>12.2f}')
    best = max(rows, key=lambda r: r['linear_top1'])
    print(f'best linear probe: layer {best["layer"]} {best["pooling"]} {best["linear_top1"]:.2f} %')
    result = dict(config=args.config, checkpoint=args.checkpoint, num_train=len(y_train),
                  num_test=len(y_test), k=args.k, temperature=args.temperature,
                  probe_epochs=args.probe_epochs, seed=args.seed, rows=rows)
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1) + '\n')
    return result


if __name__ == '__main__':
    run_cli(main)
