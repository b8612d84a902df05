"""Check the model-zoo weights shipped in zoo/: SHA-256, strict loading, a recorded metric.

    python tools/misc/zoo_check.py                 # check every entry of zoo/zoo.json
    python tools/misc/zoo_check.py --write         # (re)record the subset metrics and digests

``zoo/zoo.json`` lists each file with its config, its kind and its SHA-256, and a metric
computed from the file on the Fashion-MNIST subset shipped in ``tests/data/fashion_mnist``
(500 train / 250 test images), so that anyone can reproduce it in seconds:

- ``mim`` (a published pre-training checkpoint): the weighted k-NN top-1 (k = 20, T = 0.07)
  of the frozen backbone's last layer, mean-pooled, the 500 training images as the bank;
- ``classifier`` (a fine-tuned ``ImageClassifier``): top-1 of the config's model on the 250
  test images, through the config's test pipeline (:func:`beitlab.apis.classify`).

The full-data figures of each entry are in docs/model_zoo.md. Without ``--write`` a digest
that differs or a metric off by more than ``--tolerance`` points is an error (exit 1).
"""
import argparse
import hashlib
import json
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

# The repository root, so that beitlab imports from this checkout.
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)

from beitlab.utils.cli import run_cli  # noqa: E402

ZOO_INDEX = osp.join(REPO_ROOT, 'zoo', 'zoo.json')
SUBSET_ROOT = osp.join(REPO_ROOT, 'tests', 'data', 'fashion_mnist')
KINDS = ('mim', 'classifier')


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def subset_metric(entry: dict, root: str = SUBSET_ROOT) -> Dict[str, float]:
    """The entry's metric on the shipped subset (see the module docstring)."""
    import torch
    from mmengine.config import Config

    from beitlab.apis.features import normalize_layers
    from beitlab.engine.hooks.knn_monitor_hook import knn_top1
    from beitlab.evaluation.frozen_features import build_backbone, extract, fashion_mnist_inputs
    from beitlab.utils import register_all_modules
    register_all_modules()
    config = osp.join(REPO_ROOT, entry['config'])
    weights = osp.join(REPO_ROOT, 'zoo', entry['file'])
    if entry['kind'] == 'mim':
        cfg = Config.fromfile(config)
        prep = cfg.model.data_preprocessor
        backbone = build_backbone(cfg, weights, seed=0)
        x_train, y_train = fashion_mnist_inputs(root, 'train', prep['mean'], prep['std'])
        x_test, y_test = fashion_mnist_inputs(root, 'test', prep['mean'], prep['std'])
        last = normalize_layers(backbone, [-1])[0]
        f_train = extract(backbone, x_train, [last], ['mean'], 250)[(last, 'mean')]
        f_test = extract(backbone, x_test, [last], ['mean'], 250)[(last, 'mean')]
        return dict(knn_top1_last_mean=round(100 * knn_top1(f_train, y_train, f_test, y_test), 2))
    if entry['kind'] == 'classifier':
        from beitlab.apis import classify, init_model
        from beitlab.datasets.fashion_mnist_files import load_fashion_mnist
        model = init_model(config, weights, cfg_options={'model.pretrained': None})
        images, labels = load_fashion_mnist(root, 'test')
        with torch.no_grad():
            pred = classify(model, list(images), topk=1, batch_size=125).labels[:, 0]
        top1 = float((pred == torch.from_numpy(labels.copy())).float().mean())
        return dict(top1=round(100 * top1, 2))
    raise ValueError(f"zoo entry {entry['file']!r}: kind {entry['kind']!r} is not one of {KINDS}")


def read_index(path: str = ZOO_INDEX) -> List[dict]:
    if not osp.isfile(path):
        raise FileNotFoundError(f'zoo index {path!r} does not exist')
    with open(path) as f:
        entries = json.load(f)
    for entry in entries:
        missing = {'file', 'config', 'kind'} - set(entry)
        if missing:
            raise KeyError(f'{path}: entry {entry} lacks {sorted(missing)}')
    return entries


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--index', default=ZOO_INDEX)
    p.add_argument('--write', action='store_true', help='record the digests and subset metrics')
    p.add_argument('--tolerance', type=float, default=0.5, help='points of top-1')
    args = p.parse_args(argv)
    entries = read_index(args.index)
    problems = []
    for entry in entries:
        path = osp.join(REPO_ROOT, 'zoo', entry['file'])
        if not osp.isfile(path):
            raise FileNotFoundError(f'zoo file {path!r} (listed in {args.index}) does not exist')
        digest = sha256(path)
        metric = subset_metric(entry)
        print(f'{entry["file"]}: sha256 {digest[:16]}..., {osp.getsize(path) / 2**20:.1f} MiB, '
              f'subset {metric}')
        if args.write:
            entry['sha256'], entry['subset_metric'] = digest, metric
            continue
        if digest != entry.get('sha256'):
            problems.append(f'{entry["file"]}: sha256 {digest} differs from the recorded '
                            f'{entry.get("sha256")}')
        for key, value in metric.items():
            recorded = entry.get('subset_metric', {}).get(key)
            if recorded is None or abs(recorded - value) > args.tolerance:
                problems.append(f'{entry["file"]}: {key} {value} on the subset, recorded {recorded} '
                                f'(tolerance {args.tolerance})')
    if args.write:
        from beitlab.utils.atomic_io import atomic_write_text
        atomic_write_text(args.index, json.dumps(entries, indent=1) + '\n')
        print(f'recorded {len(entries)} entries in {args.index}')
        return 0
    if problems:
        raise ValueError('; '.join(problems))
    print(f'all {len(entries)} zoo entries match')
    return 0


if __name__ == '__main__':
    run_cli(main)
