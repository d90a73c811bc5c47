"""The few statistics the report needs, in numpy: quartiles, average ranks and the Mann–Whitney U test."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

EXACT_LIMIT = 20_000  # splits of the pooled sample enumerated for the exact test; beyond, the normal approximation


def quartiles(values: Sequence[float]) -> tuple[float, float, float] | None:
    """(Q1, median, Q3) with numpy's linear interpolation; None for no values."""
    if len(values) == 0:
        return None
    q1, median, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(q1), float(median), float(q3)


def median(values: Sequence[float]) -> float | None:
    """The median, None for no values."""
    return float(np.median(np.asarray(values, dtype=float))) if len(values) else None


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties given the average of the ranks they span."""
    a = np.asarray(values, dtype=float)
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse.reshape(-1)]


def mann_whitney(x: Sequence[float], y: Sequence[float], exact_limit: int = EXACT_LIMIT) -> tuple[float, float]:
    """Two-sided Mann–Whitney U test of x against y: (U of x, p).

    Exact when the pooled sample has at most `exact_limit` splits into groups of len(x) and len(y): the
    p-value is the share of all splits whose U lies at least as far from n1*n2/2 as the observed one
    (the permutation distribution of U; ties keep their average ranks, so it stays exact with ties).
    Beyond that, the normal approximation with the tie correction of the variance and a continuity
    correction of 0.5.
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney needs at least one value on each side")
    r = ranks([*x, *y])
    offset = n1 * (n1 + 1) / 2.0
    u = float(r[:n1].sum() - offset)
    centre = n1 * n2 / 2.0
    distance = abs(u - centre)
    n = n1 + n2
    if math.comb(n, n1) <= exact_limit:
        splits = np.array(list(itertools.combinations(range(n), n1)), dtype=np.intp)
        us = r[splits].sum(axis=1) - offset
        p = float(np.mean(np.abs(us - centre) >= distance - 1e-9))
        return u, min(p, 1.0)
    _, counts = np.unique(r, return_counts=True)
    ties = float(np.sum(counts**3 - counts))
    variance = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:  # every value equal: no evidence of any difference
        return u, 1.0
    z = max(distance - 0.5, 0.0) / math.sqrt(variance)
    return u, min(math.erfc(z / math.sqrt(2.0)), 1.0)
