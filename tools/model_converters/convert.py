"""Convert a BEiT checkpoint between beitlab and the layouts of other libraries, strictly.

    # official BEiT / BEiT v2 pre-training or fine-tuned file ({'model': ...}) -> beitlab
    python tools/model_converters/convert.py beit_base_patch16_224_pt22k.pth \\
        checkpoints/beit_base_pt22k_beitlab.pth --from official --to beitlab
    # a beitlab classifier (tools/train.py output) -> the official fine-tuning layout
    python tools/model_converters/convert.py work_dirs/ft/iter_3000.pth ft_official.pth \\
        --from beitlab --to official --kind classifier

``--from`` / ``--to``: ``beitlab`` or a layout of ``beitlab.checkpoint.layouts``; a conversion
between two foreign layouts goes through beitlab. ``--kind`` (``pretrain``: a MIM model with
its head; ``classifier``: a fine-tuned classifier) is read from the keys when not given, and
the tool says what it read. Tokenizers keep their dedicated converters:
``dalle_to_beitlab.py`` (the DALL-E dVAE encoder) and ``extract_tokenizer.py`` (a
``TokenizerTrainer`` checkpoint).

Strict: a key the layout has no place for, or a parameter a consistent model must have but
that is absent, is a ``CheckpointKeyError`` naming every one. ``SRC`` is read with
``weights_only=True`` (or as ``.safetensors``). ``DST`` is written atomically, as
``.safetensors`` when its name ends so and with ``torch.save`` otherwise; an existing ``DST``
is replaced only with ``--force``, never when it is ``SRC``. What is written: beitlab
``{'state_dict': ..., 'meta': {'backbone': arch, 'converted_from': ..., 'kind': ...}}``
(``meta['backbone']`` is checked when the file is loaded as a pre-trained backbone); official
``{'model': ...}``; mmpretrain ``{'state_dict': ...}``; hf and timm a flat state dict (in
``.safetensors``, the format those libraries publish). No tensor is resized here: a backbone
of another grid resizes ``pos_embed`` (bicubic) and the relative position tables (the
official geometric resize) when it loads the file.
"""
import argparse
import os.path as osp
import sys
from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from torch import Tensor  # noqa: E402

from beitlab.checkpoint import (  # noqa: E402
    checkpoint_meta,
    load_checkpoint_file,
    save_checkpoint_file,
    select_prefix,
    unwrap_state_dict,
)
from beitlab.checkpoint.layouts import (  # noqa: E402
    BEITLAB,
    KINDS,
    get_layout,
    infer_beitlab_kind,
    known_layout_names,
    layout_to_beitlab,
)
from beitlab.checkpoint.layouts.official import infer_backbone_config  # noqa: E402
from beitlab.utils.atomic_io import check_output_path  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402

TOKENIZER = 'tokenizer'
# how each layout's file holds its state dict (None: flat)
OUTPUT_WRAPPER = {'official': 'model', 'mmpretrain': 'state_dict'}
INDEX_SUFFIX = 'relative_position_index'
TABLE_ROWS = 40
TOKENIZER_PREFIXES = ('tokenizer.', 'quantizer.', 'quantize.', 'blocks.group_', 'blocks.input.')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    layouts = known_layout_names()
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 1)[1])
    parser.add_argument('src', help='checkpoint to read (.pth, or .safetensors)')
    parser.add_argument('dst', help='checkpoint to write (.safetensors by its name, else .pth)')
    parser.add_argument('--from', dest='src_layout', required=True, choices=layouts,
                        help='layout of SRC')
    parser.add_argument('--to', dest='dst_layout', required=True, choices=layouts,
                        help='layout of DST')
    parser.add_argument('--kind', choices=[*KINDS, TOKENIZER],
                        help='pretrain or classifier (default: read from the keys); '
                        'tokenizers have their own converters (see below)')
    parser.add_argument('--force', action='store_true', help='replace an existing DST')
    return parser.parse_args(argv)


def _tokenizer_refusal(what: str) -> ValueError:
    return ValueError(f'{what}: tokenizers keep their dedicated converters: '
                      'tools/model_converters/dalle_to_beitlab.py for the DALL-E dVAE encoder, '
                      'tools/model_converters/extract_tokenizer.py for a TokenizerTrainer '
                      'checkpoint')


def _looks_like_tokenizer(state: Mapping[str, Tensor]) -> bool:
    return any(k.startswith(TOKENIZER_PREFIXES) for k in state) and not any(
        k.startswith('backbone.') or k.startswith('patch_embed.') for k in state)


def to_beitlab(state: Mapping[str, Tensor], meta: Mapping[str, Any], layout: str,
               kind: Optional[str], source: str) -> Tuple[Dict[str, Tensor], Dict, str, str]:
    """``(beitlab state dict, arch, kind, why that kind)`` of SRC's state dict."""
    if _looks_like_tokenizer(state):
        raise _tokenizer_refusal(f'{source} holds tokenizer weights')
    if layout == BEITLAB:
        why = 'given'
        if kind is None:
            kind, why = infer_beitlab_kind(state, meta)
        recorded = meta.get('backbone')
        arch = dict(recorded) if isinstance(recorded, Mapping) else \
            infer_backbone_config(select_prefix(state, 'backbone.', source))
        return dict(state), arch, kind, why
    beitlab, arch, found = layout_to_beitlab(get_layout(layout), state, kind)
    return beitlab, arch, found, 'given' if kind else 'read from its keys'


def from_beitlab(beitlab: Dict[str, Tensor], arch: Dict, kind: str, layout: str,
                 meta: Dict[str, Any]) -> Dict[str, Any]:
    """What DST holds (see the module docstring)."""
    if layout == BEITLAB:
        return {'state_dict': beitlab, 'meta': meta}
    state = get_layout(layout).from_beitlab(beitlab, kind, arch)
    wrapper = OUTPUT_WRAPPER.get(layout)
    return {wrapper: state} if wrapper else dict(state)


def tensor_table(state: Mapping[str, Tensor], limit: int = TABLE_ROWS) -> List[str]:
    """``name | shape | dtype`` lines; beyond ``limit`` tensors, the first ``limit // 2`` and
    a count of the rest."""
    rows = [(k, '[' + ', '.join(map(str, v.shape)) + ']', str(v.dtype).replace('torch.', ''))
            for k, v in state.items()]
    shown = rows if len(rows) <= limit else rows[:limit // 2]
    head = ('name', 'shape', 'dtype')
    widths = [max(len(r[i]) for r in [head, *shown]) for i in range(3)]
    lines = [' | '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *shown]]
    if len(rows) > len(shown):
        dtypes = Counter(r[2] for r in rows)
        values = sum(v.numel() for v in state.values())
        lines.append(f'... and {len(rows) - len(shown)} more: {len(rows)} tensors, {values:,} '
                     f'values in all ({", ".join(f"{n} {d}" for d, n in dtypes.items())})')
    return lines


def what_changed(src_state: Mapping[str, Tensor], beitlab: Mapping[str, Tensor],
                 out_state: Mapping[str, Tensor], kind: str, arch: Mapping) -> List[str]:
    """Sentences for what the conversion did besides renaming."""
    notes = []
    checked = [k for k in src_state if k.endswith(INDEX_SUFFIX)]
    if checked:
        notes.append(f'checked {len(checked)} {INDEX_SUFFIX} buffers against the official index '
                     'and dropped them (beitlab rebuilds them)')
    rebuilt = [k for k in out_state if k.endswith(INDEX_SUFFIX)]
    if rebuilt:
        notes.append(f'wrote {len(rebuilt)} {INDEX_SUFFIX} buffers for grid '
                     f'{arch.get("grid")}')
    if kind == 'classifier' and 'backbone.mask_token' in beitlab and \
            not any(k.endswith('mask_token') for k in out_state):
        notes.append('dropped backbone.mask_token (the fine-tuning model has no [MASK])')
    skipped = [k for k in beitlab if k.startswith(('target_generator.', 'data_preprocessor.'))]
    if skipped and len(out_state) < len(beitlab):
        notes.append(f'skipped {len(skipped)} tensors without a counterpart '
                     '(target_generator.*, data_preprocessor.*)')
    notes.append('nothing resized or copied: a backbone of another grid resizes pos_embed '
                 '(bicubic) and the relative position tables (official geometric resize) when it '
                 'loads the file, and copies a shared table into per-layer ones')
    return notes


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.kind == TOKENIZER:
        raise _tokenizer_refusal('--kind tokenizer')
    check_output_path(args.dst, [args.src], force=args.force)
    checkpoint = load_checkpoint_file(args.src)
    source = repr(args.src)
    state = unwrap_state_dict(checkpoint, source)
    meta_in = checkpoint_meta(checkpoint)
    beitlab, arch, kind, why = to_beitlab(state, meta_in, args.src_layout, args.kind, source)
    print(f'{args.src}: {args.src_layout} {kind} checkpoint (kind {why}), {len(state)} tensors')
    meta = dict(meta_in) if args.src_layout == BEITLAB else {}
    head = beitlab.get('head.fc.weight')
    meta.update(backbone=arch, converted_from=args.src_layout, kind=kind,
                source_file=str(args.src))
    if head is not None:
        meta['vocab_size' if kind == 'pretrain' else 'num_classes'] = int(head.shape[0])
    out = from_beitlab(beitlab, arch, kind, args.dst_layout, meta)
    out_state = unwrap_state_dict(out, repr(args.dst))
    for note in what_changed(state, beitlab, out_state, kind, arch):
        print(note)
    save_checkpoint_file(out, args.dst)
    print('\n'.join(tensor_table(out_state)))
    extra = {k: meta[k] for k in ('vocab_size', 'num_classes') if k in meta}
    print(f'wrote {args.dst} ({args.dst_layout}, {kind}): {len(out_state)} tensors'
          + ''.join(f', {k} {v}' for k, v in extra.items())
          + f'; backbone arch {arch.get("arch")}, grid {arch.get("grid")}')
    return 0


def run_alias(alias: str, argv: Sequence[str], fixed: Sequence[str]) -> int:
    """An old per-direction converter: say that it is deprecated, then run :func:`main` with
    ``fixed`` (its ``--from`` / ``--to`` / ``--kind``) before the user's arguments."""
    print(f'{alias}: deprecated; this is python tools/model_converters/convert.py SRC DST '
          f'{" ".join(fixed)}', file=sys.stderr)
    return main([*argv, *fixed])


if __name__ == '__main__':
    run_cli(main)
