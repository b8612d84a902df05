"""The backbone owns its internals: no code outside ``beitlab/models/backbones/`` reads a
private attribute (``._name``) of a ``BEiTViT``.

Every ``.py`` file of the package, ``tools/`` and ``projects/`` (the backbones folder
excepted) is parsed with :mod:`ast`, and an attribute read ``X._name`` is a hit when

- ``X`` names a backbone: a variable or attribute called one of :data:`BACKBONE_NAMES`
  (``self.backbone._layers``, ``encoder._check_mask``, ``bb._format_output``), or
- ``_name`` is one of BEiTViT's own private members (:func:`beitvit_private_names`) on
  anything but ``self`` / ``cls`` / ``super()`` (a class of its own may have a member of
  the same name).

Dunder names (``__class__``) are not private. A failure names each hit as ``file:line``.
"""
import ast
from pathlib import Path
from typing import List, Set

from torch import nn

from beitlab.models.backbones.beit_vit import BEiTViT

from .tools_helpers import REPO_ROOT

SCANNED = ('beitlab', 'tools', 'projects')
BACKBONE_DIR = Path('beitlab', 'models', 'backbones')

# Names under which beitlab code holds a BEiTViT: the algorithms' ``backbone``, the
# tokenizers' ``encoder`` / ``teacher``, the perceptual loss's ``network``, local aliases.
BACKBONE_NAMES = frozenset({'backbone', 'encoder', 'teacher', 'network', 'bb', 'vit'})


def _is_private(name: str) -> bool:
    return name.startswith('_') and not name.startswith('__')


def beitvit_private_names() -> Set[str]:
    """Private members BEiTViT defines itself (not the ``nn.Module`` hooks it overrides,
    such as ``_load_from_state_dict``, which other modules call on ``super()``)."""
    return {name for klass in BEiTViT.__mro__ if klass.__module__.startswith('beitlab.')
            for name in vars(klass) if _is_private(name) and not hasattr(nn.Module, name)
            and not name.startswith('_abc')}  # (ABCMeta's cache, on every class)


def _holder_name(node: ast.expr) -> str:
    """``backbone`` for ``backbone`` and ``self.backbone``; '' for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ''


def _is_own(node: ast.expr) -> bool:
    """``self``, ``cls`` or ``super()``."""
    if isinstance(node, ast.Name):
        return node.id in ('self', 'cls')
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'super'


def private_backbone_reads(source: str, private_names: Set[str]) -> List[str]:
    """``line: expression`` for every private backbone attribute read in ``source``."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute) or not _is_private(node.attr):
            continue
        on_backbone = _holder_name(node.value) in BACKBONE_NAMES and not _is_own(node.value)
        if on_backbone or (node.attr in private_names and not _is_own(node.value)):
            hits.append(f'{node.lineno}: {ast.unparse(node)}')
    return hits


def test_private_backbone_members_are_known():
    names = beitvit_private_names()
    assert {'_layers', '_format_output', '_check_mask'} <= names
    assert '_load_from_state_dict' not in names and '_modules' not in names


def test_the_scan_finds_private_reads_and_nothing_else():
    names = beitvit_private_names()
    flagged = '\n'.join([
        'x = self.backbone._format_output(t, grid)',
        'y = encoder._check_mask(m, 2, g)',
        'for i, t, g in model.backbone._layers(x, None): pass',
        'z = vit._format_output(t, g)',
        'w = other._layers(x, None)',            # a BEiTViT private name on any object
    ])
    assert [h.split(':')[0] for h in private_backbone_reads(flagged, names)] == \
        ['1', '2', '3', '4', '5']
    clean = '\n'.join([
        'self._cache = {}',                     # a class's own private state
        'self._layers(x, None)',
        'super()._load_from_state_dict(sd, prefix, *args)',
        'n = self.backbone.num_extra_tokens',   # public attributes
        'p = self.backbone.patch_embed.proj.weight',
        'k = type(self.backbone).__name__',
        'h = self.head._private_thing',         # not a backbone
    ])
    assert private_backbone_reads(clean, names) == []


def test_no_module_outside_the_backbones_reads_backbone_privates():
    names = beitvit_private_names()
    hits = []
    for top in SCANNED:
        for path in sorted((REPO_ROOT / top).rglob('*.py')):
            rel = path.relative_to(REPO_ROOT)
            if BACKBONE_DIR in rel.parents:
                continue
            hits += [f'{rel}:{h}' for h in private_backbone_reads(path.read_text(), names)]
    assert not hits, ('private BEiTViT members read outside beitlab/models/backbones/ (add a '
                      'public method to the backbone instead):\n' + '\n'.join(hits))
