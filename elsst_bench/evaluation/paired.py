"""The one paired randomization test of the package, and Holm's correction: what ``compare`` prints and what
RESULTS.md's tables report, so the two never give different p-values for the same pair.

Fisher's randomization test on paired per-query scores (Smucker et al. 2007): with d the per-query differences,
p = (1 + #{s : |mean(s·d)| ≥ |mean(d)|}) / (1 + N) over N random sign vectors s (two-sided). numpy with a fixed
seed, so p does not depend on the thread count (ranx's numba version is parallel, and its stream does); the tests
check it against ranx's. Holm's step-down procedure controls the family-wise error over a set of comparisons.
"""

from __future__ import annotations

import numpy as np

PERMUTATIONS = 10_000
SEED = 0
ALPHA = 0.05


def fisher(control, treatment, n: int = PERMUTATIONS, seed: int = SEED) -> float:
    """Two-sided paired randomization test on the mean difference of ``treatment`` − ``control``."""
    return fisher_many([np.asarray(treatment, dtype=np.float64) - np.asarray(control, dtype=np.float64)], n, seed)[0]


def fisher_many(diffs: list, n: int = PERMUTATIONS, seed: int = SEED) -> list[float]:
    """:func:`fisher` of several paired differences of one length at once: each gets the same sign vectors it
    would get alone (one stream per seed), drawn once, so k comparisons on the same queries cost about one."""
    d = np.stack([np.asarray(x, dtype=np.float64) for x in diffs], axis=1)  # queries × comparisons
    observed = np.abs(d.mean(axis=0))
    rng = np.random.default_rng(seed)
    hits = np.zeros(d.shape[1], dtype=np.int64)
    for start in range(0, n, 1000):
        signs = rng.choice((-1.0, 1.0), size=(min(1000, n - start), d.shape[0]))
        hits += (np.abs(signs @ d) / d.shape[0] >= observed - 1e-12).sum(axis=0)
    return [(1 + int(h)) / (1 + n) for h in hits]


def fisher_batch(pairs: dict) -> dict:
    """``{key: (control, treatment)}`` -> ``{key: p}``, the comparisons of equal length tested together."""
    by_length: dict[int, list] = {}
    for key, (control, treatment) in pairs.items():
        by_length.setdefault(len(control), []).append(key)
    out = {}
    for keys in by_length.values():
        diffs = [np.asarray(pairs[k][1], dtype=np.float64) - np.asarray(pairs[k][0], dtype=np.float64) for k in keys]
        out.update(zip(keys, fisher_many(diffs)))
    return out


def holm(pvalues: dict, alpha: float = ALPHA) -> dict:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise level ``alpha``."""
    order = sorted(pvalues, key=pvalues.get)
    rejected, m = {}, len(order)
    still = True
    for i, key in enumerate(order):
        still = still and pvalues[key] <= alpha / (m - i)
        rejected[key] = still
    return rejected
