"""Convert a fine-tuned BEiT classifier between beitlab and the official BEiT layout.

    # official fine-tuned file (e.g. beit_base_patch16_224_pt22k_ft22kto1k.pth) -> beitlab
    python tools/model_converters/beit_classifier_official.py to-beitlab SRC.pth DST.pth
    # beitlab ImageClassifier checkpoint (tools/train.py output) -> official layout
    python tools/model_converters/beit_classifier_official.py to-official SRC.pth DST.pth

Official fine-tuned checkpoints hold ``{'model': {...}}`` with the backbone names at top level
(as in pre-training), ``fc_norm.{weight,bias}`` for mean pooling and ``head.{weight,bias}``;
in beitlab these are ``backbone.*`` and ``head.fc.*``. Importing drops the official
``relative_position_index`` buffers (beitlab computes them; they are not in its state dict);
exporting writes them next to every bias table and leaves out ``mask_token``, so the result
loads with ``strict=True`` into the official fine-tuning model. Files are read with
``weights_only=True``. The mapping lives in :mod:`beitlab.checkpoint.layouts.official`. An existing
output is replaced only with ``--force`` (never when it is the input), atomically.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.checkpoint import safe_torch_load  # noqa: E402
from beitlab.checkpoint.layouts.official import (  # noqa: E402
    beitlab_classifier_to_official,
    official_classifier_to_beitlab,
)
from beitlab.utils.atomic_io import atomic_torch_save, check_output_path  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('direction', choices=['to-beitlab', 'to-official'])
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--force', action='store_true', help='replace an existing dst')
    args = parser.parse_args(argv)
    check_output_path(args.dst, [args.src], force=args.force)
    ckpt = safe_torch_load(args.src)
    if args.direction == 'to-beitlab':
        out = {'state_dict': official_classifier_to_beitlab(ckpt),
               'meta': {'converted_from': args.src}}
        n = len(out['state_dict'])
    else:
        out = {'model': beitlab_classifier_to_official(ckpt)}
        n = len(out['model'])
    atomic_torch_save(out, args.dst)
    print(f'wrote {args.dst} ({n} tensors, {args.direction})')
    return 0


if __name__ == '__main__':
    run_cli(main)
