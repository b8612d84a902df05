"""Deprecated alias of ``convert.py SRC DST --kind classifier`` with ``--from official --to
beitlab`` (``to-beitlab``) or ``--from beitlab --to official`` (``to-official``); kept for
existing scripts: ``beit_classifier_official.py {to-beitlab,to-official} SRC DST [--force]``."""
import importlib.util
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from beitlab.utils.cli import run_cli  # noqa: E402

_spec = importlib.util.spec_from_file_location('convert', osp.join(osp.dirname(__file__), 'convert.py'))
convert = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(convert)
DIRECTIONS = {'to-beitlab': ['--from', 'official', '--to', 'beitlab'],
              'to-official': ['--from', 'beitlab', '--to', 'official']}


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in DIRECTIONS:
        raise ValueError(f'the first argument must be one of {sorted(DIRECTIONS)}, got '
                         f'{argv[0] if argv else "nothing"!r}')
    return convert.run_alias(osp.basename(__file__), argv[1:],
                             [*DIRECTIONS[argv[0]], '--kind', 'classifier'])


if __name__ == '__main__':
    run_cli(main)
