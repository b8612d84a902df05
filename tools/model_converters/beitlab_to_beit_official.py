"""Export a beitlab BEiT checkpoint to the official BEiT pre-training format.

    python tools/model_converters/beitlab_to_beit_official.py checkpoints/beit_fashion-mnist.pth \
        beit_fashion-mnist_official.pth

beitlab ``{'state_dict': {...}}`` -> official ``{'model': {...}}``: ``backbone.<name>``
becomes ``<name>``, ``head.fc.*`` becomes ``lm_head.*`` and ``relative_position_index``
buffers are rebuilt next to each bias table. Keys under ``--ignore-prefix`` (default: the
frozen tokenizer ``target_generator.`` and ``data_preprocessor.``) are skipped; any other
unknown key, and any missing BEiT parameter, is an error that names it. An existing output is
replaced only with ``--force`` (never when it is the input), atomically.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.checkpoint import checkpoint_meta, load_checkpoint_file, unwrap_state_dict  # noqa: E402
from beitlab.checkpoint.layouts.official import DEFAULT_EXPORT_IGNORED_PREFIXES, beitlab_to_official  # noqa: E402
from beitlab.utils.atomic_io import atomic_torch_save, check_output_path  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='beitlab checkpoint (dict with key "state_dict")')
    parser.add_argument('dst', help='official-format checkpoint to write')
    parser.add_argument('--no-index', action='store_true',
                        help='do not write relative_position_index buffers')
    parser.add_argument('--ignore-prefix', action='append', default=None,
                        help='key prefix to skip (repeatable); default: '
                        f'{" ".join(DEFAULT_EXPORT_IGNORED_PREFIXES)}')
    parser.add_argument('--allow-missing', action='store_true')
    parser.add_argument('--allow-unknown', action='store_true',
                        help='skip keys without an official counterpart instead of failing')
    parser.add_argument('--force', action='store_true', help='replace an existing dst')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    check_output_path(args.dst, [args.src], force=args.force)
    prefixes = tuple(args.ignore_prefix) if args.ignore_prefix else DEFAULT_EXPORT_IGNORED_PREFIXES
    ckpt = load_checkpoint_file(args.src)
    state_dict, meta = unwrap_state_dict(ckpt, repr(args.src)), checkpoint_meta(ckpt)
    official = beitlab_to_official(state_dict, meta, not args.no_index, args.allow_missing,
                                   args.allow_unknown, prefixes)
    atomic_torch_save({'model': official}, args.dst)
    print(f'wrote {args.dst}: {len(official)} tensors')
    return 0


if __name__ == '__main__':
    run_cli(main)
