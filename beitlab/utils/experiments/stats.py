"""Summaries over seeds for the experiment scripts' tables."""
from typing import Sequence, Tuple

import numpy as np


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; NaN for a single value)."""
    if len(values) == 0:
        raise ValueError('mean_std needs at least one value, got none')
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else float('nan')


def mean_std_text(values: Sequence[float], signed: bool = False) -> str:
    """``mean ± sample std`` to two decimals, just the mean for one value, ``n/a`` for none;
    ``signed`` prints the mean with its sign (for gaps)."""
    if len(values) == 0:
        return 'n/a'
    mean, std = mean_std(values)
    text = f'{mean:+.2f}' if signed else f'{mean:.2f}'
    return text if len(values) == 1 else f'{text} ± {std:.2f}'
