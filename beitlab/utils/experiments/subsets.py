"""Class-balanced label subsets of an annotation list, for label-efficiency experiments."""
from collections import defaultdict
from typing import Dict, List

import numpy as np

__all__ = ['balanced_subset']


def balanced_subset(lines: List[str], size: int, seed: int) -> List[str]:
    """``size`` lines of an annotation list (``<path> <label>`` per line, the layout of
    :class:`~beitlab.datasets.imagenet_style.ImageNetStyleDataset`) with as near as possible
    equal counts per class, drawn with ``seed``; all lines when ``size`` is not smaller.

    The classes come in label order and the first ``size % classes`` of them get one line
    more; within a class the chosen lines keep the list's order.
    """
    if size >= len(lines):
        return list(lines)
    by_class: Dict[int, List[str]] = defaultdict(list)
    for line in lines:
        by_class[int(line.rsplit(' ', 1)[1])].append(line)
    rng = np.random.default_rng(seed)
    classes = sorted(by_class)
    per_class = [size // len(classes) + (i < size % len(classes)) for i in range(len(classes))]
    chosen = []
    for c, n in zip(classes, per_class):
        idx = rng.choice(len(by_class[c]), size=n, replace=False)
        chosen.extend(by_class[c][i] for i in sorted(idx))
    return chosen
