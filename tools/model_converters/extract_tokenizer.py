"""Extract a trained tokenizer from a ``TokenizerTrainer`` training checkpoint.

Keeps only the tokenizer's weights (under their ``tokenizer.*`` names, so ``tools/test.py``
can load the file into a ``TokenizerTrainer``; tokenizers strip the prefix) and its config,
so the file is small and loads with ``torch.load(weights_only=True)`` anywhere::

    python tools/model_converters/extract_tokenizer.py \
        work_dirs/dvae_fashion-mnist/iter_3000.pth checkpoints/dvae_fashion-mnist.pth \
        --config configs/dvae/dvae_fashion-mnist.py

Use it as ``dict(type='DVAE', ..., checkpoint='checkpoints/dvae_fashion-mnist.pth')``.
An existing output is replaced only with ``--force`` (never when it is an input), atomically.
"""
import argparse
import os.path as osp
import sys
from typing import Optional

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.models.tokenizers.utils import load_tokenizer_state_dict  # noqa: E402
from beitlab.utils.atomic_io import atomic_torch_save, check_output_path  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description='training checkpoint -> tokenizer weights')
    parser.add_argument('src', help='mmengine checkpoint of a TokenizerTrainer run')
    parser.add_argument('dst', help='output tokenizer checkpoint')
    parser.add_argument('--config', help='training config; its model.tokenizer is stored '
                        'in the output meta')
    parser.add_argument('--force', action='store_true', help='replace an existing dst')
    args = parser.parse_args(argv)
    check_output_path(args.dst, [args.src, args.config], force=args.force)
    state_dict = load_tokenizer_state_dict(args.src)
    meta = dict(source=osp.abspath(args.src))
    if args.config:
        from mmengine.config import Config
        meta['tokenizer'] = Config.fromfile(args.config).model.tokenizer.to_dict()
    state_dict = {f'tokenizer.{k}': v for k, v in state_dict.items()}
    atomic_torch_save(dict(state_dict=state_dict, meta=meta), args.dst)
    print(f'saved {len(state_dict)} tokenizer tensors to {args.dst}')


if __name__ == '__main__':
    run_cli(main)
