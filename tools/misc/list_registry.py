"""Print every registered beitlab component, grouped by registry.

    python tools/misc/list_registry.py [--registry models]
"""
import argparse
import os.path as osp
import sys

# The repository root, so that beitlab imports from this checkout.
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from beitlab.registry import ALL_REGISTRIES  # noqa: E402
from beitlab.utils import register_all_modules  # noqa: E402
from beitlab.utils.cli import run_cli  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--registry', choices=sorted(ALL_REGISTRIES),
                        help='print only this registry')
    args = parser.parse_args()
    register_all_modules()
    for key, registry in ALL_REGISTRIES.items():
        if args.registry and key != args.registry:
            continue
        names = sorted(registry.module_dict)
        print(f'{key} ({registry.name}, {len(names)} entries)')
        for name in names:
            doc = (registry.module_dict[name].__doc__ or '').strip().splitlines()
            print(f'  {name:<36} {doc[0] if doc else "(undocumented)"}')
        if not names and registry.parent is not None:
            print(f'  (no beitlab entry; the entries of {registry.parent.scope}\'s '
                  f'{registry.parent.name!r} registry are found through it)')
        print()


if __name__ == '__main__':
    run_cli(main)
