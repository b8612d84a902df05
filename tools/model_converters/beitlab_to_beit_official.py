"""Deprecated alias of ``convert.py SRC DST --from beitlab --to official --kind pretrain``
(a beitlab BEiT checkpoint -> the official pre-training layout); kept for existing scripts."""
import importlib.util
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from beitlab.utils.cli import run_cli  # noqa: E402

_spec = importlib.util.spec_from_file_location('convert', osp.join(osp.dirname(__file__), 'convert.py'))
convert = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(convert)


def main(argv: Optional[List[str]] = None) -> int:
    return convert.run_alias(osp.basename(__file__), sys.argv[1:] if argv is None else argv,
                             ['--from', 'beitlab', '--to', 'official', '--kind', 'pretrain'])


if __name__ == '__main__':
    run_cli(main)
