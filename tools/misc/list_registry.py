"""Print every registered beitlab component, grouped by registry.

    python tools/misc/list_registry.py [--registry models]
"""
import argparse

from beitlab.registry import ALL_REGISTRIES
from beitlab.utils import register_all_modules


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
        print()


if __name__ == '__main__':
    main()
