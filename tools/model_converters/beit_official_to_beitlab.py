"""Convert an official BEiT pre-training checkpoint into a beitlab checkpoint.

    python tools/model_converters/beit_official_to_beitlab.py beit_base_patch16_224_pt22k.pth \
        checkpoints/beit_base_pt22k_beitlab.pth

Official ``{'model': {...}}`` -> beitlab ``{'state_dict': {...}, 'meta': {...}}``:
backbone names get the ``backbone.`` prefix, ``lm_head.*`` becomes ``head.fc.*`` and the
``relative_position_index`` buffers are dropped (beitlab rebuilds them). Unknown or
missing keys are an error (``CheckpointKeyError``) that names them. The logic lives in
:mod:`beitlab.checkpoint.layouts.official`. An existing output is replaced only with ``--force``
(never when it is the input), atomically.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.checkpoint import load_checkpoint_file, unwrap_state_dict  # noqa: E402
from beitlab.checkpoint.layouts.official import official_to_beitlab  # noqa: E402
from beitlab.utils.atomic_io import atomic_torch_save, check_output_path  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official BEiT checkpoint (.pth, dict with key "model")')
    parser.add_argument('dst', help='beitlab checkpoint to write')
    parser.add_argument('--allow-missing', action='store_true',
                        help='convert even if expected BEiT parameters are absent')
    parser.add_argument('--allow-unknown', action='store_true',
                        help='drop keys that are not BEiT parameters instead of failing')
    parser.add_argument('--force', action='store_true', help='replace an existing dst')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    check_output_path(args.dst, [args.src], force=args.force)
    official = unwrap_state_dict(load_checkpoint_file(args.src), repr(args.src))
    state_dict, meta = official_to_beitlab(official, args.allow_missing, args.allow_unknown)
    meta['source_file'] = str(args.src)
    atomic_torch_save({'state_dict': state_dict, 'meta': meta}, args.dst)
    print(f'wrote {args.dst}: backbone {meta["backbone"]}, vocab_size {meta["vocab_size"]}')
    if meta['dropped_unknown_keys']:
        print(f'dropped unknown keys: {meta["dropped_unknown_keys"]}')
    return 0


if __name__ == '__main__':
    run_cli(main)
