"""Convert the DALL-E dVAE encoder's state dict (OpenAI ``dall_e`` package) to beitlab's
``DALLEEncoder`` names.

The released ``encoder.pkl`` is a whole pickled module, which ``torch.load(weights_only=True)``
refuses by design; in an environment you trust, with the ``dall_e`` package installed, save its
state dict once::

    python -c "import torch, dall_e; enc = dall_e.load_model('encoder.pkl'); \
torch.save(enc.state_dict(), 'dalle_encoder_sd.pth')"

then convert (this tool only ever loads with ``weights_only=True``)::

    python tools/model_converters/dalle_to_beitlab.py dalle_encoder_sd.pth \
        checkpoints/dalle_encoder.pth

``checkpoints/dalle_encoder.pth`` is where the DALL-E BEiT configs (``configs/beit/mim_vit-b.py``,
``mim_vit-l.py``, ``mim_vit-b_bf16-fast.py``; key ``model.target_generator.checkpoint``) look
for the converted encoder. An existing output is replaced only with ``--force`` (never when it
is the input), atomically.

Name mapping::

    blocks.input.{w,b}                               -> stem.{weight,bias}
    blocks.group_G.block_M.id_path.{w,b}             -> stages.(G-1).(M-1).shortcut.{weight,bias}
    blocks.group_G.block_M.res_path.conv_K.{w,b}     -> stages.(G-1).(M-1).convK.{weight,bias}
    blocks.output.conv.{w,b}                         -> head.{weight,bias}
"""
import argparse
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, Optional

import torch

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.checkpoint import load_checkpoint_file, unwrap_state_dict  # noqa: E402
from beitlab.utils.atomic_io import atomic_torch_save, check_output_path  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402

PATTERNS = (
    (re.compile(r'^blocks\.input\.([wb])$'), 'stem.{0}'),
    (re.compile(r'^blocks\.group_(\d+)\.block_(\d+)\.id_path\.([wb])$'),
     'stages.{0}.{1}.shortcut.{2}'),
    (re.compile(r'^blocks\.group_(\d+)\.block_(\d+)\.res_path\.conv_([1-4])\.([wb])$'),
     'stages.{0}.{1}.conv{2}.{3}'),
    (re.compile(r'^blocks\.output\.conv\.([wb])$'), 'head.{0}'),
)
PARAM = {'w': 'weight', 'b': 'bias'}


def _rename(key: str) -> str:
    for pattern, template in PATTERNS:
        match = pattern.match(key)
        if match is None:
            continue
        parts = list(match.groups())
        parts[-1] = PARAM[parts[-1]]
        if template.startswith('stages'):
            parts[0], parts[1] = str(int(parts[0]) - 1), str(int(parts[1]) - 1)
        return template.format(*parts)
    raise KeyError(f'unexpected key {key!r} in the DALL-E encoder state dict (expected '
                   'blocks.input.*, blocks.group_N.block_M.{id_path,res_path.conv_K}.*, '
                   'blocks.output.conv.*)')


def convert_dalle_encoder(state_dict: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """dall_e ``Encoder.state_dict()`` -> ``DALLEEncoder`` state dict (float32 tensors)."""
    if any(k.startswith('blocks.') for k in state_dict) is False:
        raise KeyError(f'no blocks.* keys: this is not a dall_e Encoder state dict '
                       f'(first keys: {list(state_dict)[:5]})')
    return OrderedDict((_rename(k), v.float().contiguous()) for k, v in state_dict.items())


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description='dall_e encoder state dict -> beitlab')
    parser.add_argument('src', help='dall_e Encoder state dict (torch.save of state_dict())')
    parser.add_argument('dst', help='output file for DALLEEncoder(checkpoint=...)')
    parser.add_argument('--force', action='store_true', help='replace an existing dst')
    args = parser.parse_args(argv)
    check_output_path(args.dst, [args.src], force=args.force)
    # a state dict of tensors, or one under 'state_dict' / 'model' / 'module' / 'ema'; save
    # the dall_e Encoder's state_dict() as shown in this tool's docstring
    state_dict = unwrap_state_dict(load_checkpoint_file(args.src), repr(args.src))
    converted = convert_dalle_encoder(state_dict)
    vocab = converted['head.weight'].shape[0]
    hidden = converted['stem.weight'].shape[0]
    atomic_torch_save(dict(state_dict=converted,
                           meta=dict(source=args.src, tokenizer=dict(
                               type='DALLEEncoder', vocab_size=vocab, hidden_channels=hidden))),
                      args.dst)
    print(f'converted {len(converted)} tensors (vocab_size={vocab}, hidden_channels={hidden}) '
          f'-> {args.dst}')


if __name__ == '__main__':
    run_cli(main)
