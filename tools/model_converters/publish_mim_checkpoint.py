"""Keep only the model weights of a BEiT (MIM) training checkpoint.

    python tools/model_converters/publish_mim_checkpoint.py \
        work_dirs/beit_vit-fmnist_fashion-mnist/iter_600.pth checkpoints/beit_fashion-mnist.pth

The output is ``dict(state_dict={backbone.*, head.*}, meta={source, iter})``: no optimizer
state or logging history, so it is small and loads with ``torch.load(weights_only=True)``
without any allow-list. The frozen tokenizer is never part of a BEiT state dict.
``meta['source']`` is the file name of the training checkpoint (not its folder). A ``dst``
ending in ``.safetensors`` is written in that format (``meta`` as its JSON metadata);
``--half`` stores the floating-point tensors as float16 (half the size; loading casts them
back to the model's float32).

An existing output is replaced only with ``--force`` (never when it is the input itself), and
atomically: killed at any moment, ``dst`` is the old file or the complete new one.
"""
import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.checkpoint import (  # noqa: E402
    checkpoint_meta,
    load_checkpoint_file,
    save_checkpoint_file,
    unwrap_state_dict,
)
from beitlab.utils import check_output_path  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description='training checkpoint -> model weights')
    parser.add_argument('src', help='mmengine checkpoint written by tools/train.py')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--prefixes', nargs='+', default=['backbone.', 'head.'],
                        help='state-dict key prefixes to keep')
    parser.add_argument('--half', action='store_true',
                        help='store floating-point tensors as float16')
    parser.add_argument('--force', action='store_true', help='replace an existing dst')
    args = parser.parse_args(argv)
    check_output_path(args.dst, [args.src], force=args.force)
    ckpt = load_checkpoint_file(args.src)
    state = unwrap_state_dict(ckpt, repr(args.src))
    kept = {k: v for k, v in state.items() if k.startswith(tuple(args.prefixes))}
    if not kept:
        raise KeyError(f'{args.src!r} has no key starting with {args.prefixes}; '
                       f'first keys: {list(state)[:5]}')
    if args.half:
        kept = {k: v.half() if v.is_floating_point() else v for k, v in kept.items()}
    meta = dict(source=osp.basename(args.src), iter=checkpoint_meta(ckpt).get('iter'))
    save_checkpoint_file(dict(state_dict=kept, meta=meta), args.dst)
    print(f'saved {len(kept)} tensors ({", ".join(args.prefixes)}) to {args.dst}')


if __name__ == '__main__':
    run_cli(main)
