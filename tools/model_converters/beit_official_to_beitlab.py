"""Convert an official BEiT pre-training checkpoint into a beitlab checkpoint.

    python tools/model_converters/beit_official_to_beitlab.py beit_base_patch16_224_pt22k.pth \
        checkpoints/beit_base_pt22k_beitlab.pth

Official ``{'model': {...}}`` -> beitlab ``{'state_dict': {...}, 'meta': {...}}``:
backbone names get the ``backbone.`` prefix, ``lm_head.*`` becomes ``head.fc.*`` and the
``relative_position_index`` buffers are dropped (beitlab rebuilds them). Unknown or
missing keys are an error that names them. The logic lives in
:mod:`beitlab.utils.official_checkpoint`.
"""
import argparse
import sys
from typing import List, Optional

from beitlab.utils.official_checkpoint import CheckpointKeyError, convert_official_file


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official BEiT checkpoint (.pth, dict with key "model")')
    parser.add_argument('dst', help='beitlab checkpoint to write')
    parser.add_argument('--allow-missing', action='store_true',
                        help='convert even if expected BEiT parameters are absent')
    parser.add_argument('--allow-unknown', action='store_true',
                        help='drop keys that are not BEiT parameters instead of failing')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        meta = convert_official_file(args.src, args.dst, args.allow_missing, args.allow_unknown)
    except CheckpointKeyError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'wrote {args.dst}: backbone {meta["backbone"]}, vocab_size {meta["vocab_size"]}')
    if meta['dropped_unknown_keys']:
        print(f'dropped unknown keys: {meta["dropped_unknown_keys"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
