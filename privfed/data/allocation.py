"""How many images of each class each party gets: integer tables with exact margins.

Stratified splitting asks for a table ``a[party][class]`` whose row sums are the party sizes,
whose column sums are the class counts, and whose entries are each the floor or the ceiling
of the proportional share ``size * count / total``. Rounding each row on its own can break a
column sum; the table rounding below (Bacharach, 1966, "Matrix rounding problems") always
succeeds because the fractional parts form a feasible transport problem, solved here as a
small max-flow. The Dirichlet label skew of Hsu, Qi & Brown (2019, "Measuring the effects of
non-identical data distribution for federated visual classification",
https://arxiv.org/abs/1909.06335) draws each client's class mix from Dir(alpha * p) and is fitted
to the same margins by iterative proportional fitting (Sinkhorn-Knopp) before rounding.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction

import numpy as np


def _max_flow_round(floors: np.ndarray, allowed: np.ndarray, row_need: np.ndarray, col_need: np.ndarray, unit: bool) -> np.ndarray:
    """Add 0/1 (``unit``) or any count to ``floors`` on ``allowed`` cells to meet the needs."""
    rows, cols = floors.shape
    source, sink = rows + cols, rows + cols + 1
    capacity: dict[tuple[int, int], int] = {}
    neighbours: list[list[int]] = [[] for _ in range(rows + cols + 2)]

    def edge(u: int, v: int, cap: int) -> None:
        if (u, v) not in capacity and (v, u) not in capacity:
            neighbours[u].append(v)
            neighbours[v].append(u)
        capacity[(u, v)] = capacity.get((u, v), 0) + cap
        capacity.setdefault((v, u), 0)

    big = int(row_need.sum()) + 1
    for r in range(rows):
        if row_need[r]:
            edge(source, r, int(row_need[r]))
        for c in range(cols):
            if allowed[r, c]:
                edge(r, rows + c, 1 if unit else big)
    for c in range(cols):
        if col_need[c]:
            edge(rows + c, sink, int(col_need[c]))
    total = 0
    while True:  # Edmonds-Karp: shortest augmenting paths
        parent = {source: source}
        queue = deque([source])
        while queue and sink not in parent:
            u = queue.popleft()
            for v in neighbours[u]:
                if v not in parent and capacity[(u, v)] > 0:
                    parent[v] = u
                    queue.append(v)
        if sink not in parent:
            break
        path, v = [], sink
        while v != source:
            path.append((parent[v], v))
            v = parent[v]
        push = min(capacity[e] for e in path)
        for u, v in path:
            capacity[(u, v)] -= push
            capacity[(v, u)] += push
        total += push
    result = floors.copy()
    for r in range(rows):
        for c in range(cols):
            if allowed[r, c]:
                result[r, c] += capacity[(rows + c, r)]
    if total != int(row_need.sum()):
        raise ArithmeticError("no integer table meets these margins")
    return result


def round_table(floors: np.ndarray, has_fraction: np.ndarray, row_sums: np.ndarray, col_sums: np.ndarray) -> np.ndarray:
    """Round a table with exact integer margins, moving each cell up by at most one if possible."""
    row_need = np.asarray(row_sums, dtype=np.int64) - floors.sum(axis=1)
    col_need = np.asarray(col_sums, dtype=np.int64) - floors.sum(axis=0)
    if row_need.sum() != col_need.sum() or (row_need < 0).any() or (col_need < 0).any():
        raise ValueError("the margins do not match the table")
    try:
        return _max_flow_round(floors, has_fraction, row_need, col_need, unit=True)
    except ArithmeticError:  # only when the fractional table did not meet the margins exactly
        return _max_flow_round(floors, np.ones_like(has_fraction), row_need, col_need, unit=False)


def stratified_table(sizes: list[int], class_counts: list[int]) -> np.ndarray:
    """``a[p][c]`` within one of ``sizes[p] * class_counts[c] / total`` (exact arithmetic).

    ``sum(sizes)`` must be ``sum(class_counts)``: pass unused images as one more party.
    """
    total = sum(class_counts)
    if sum(sizes) != total:
        raise ValueError("party sizes must add up to the number of images")
    share = [[Fraction(s * n, total) if total else Fraction(0) for n in class_counts] for s in sizes]
    floors = np.array([[int(x) for x in row] for row in share], dtype=np.int64).reshape(len(sizes), len(class_counts))
    has_fraction = np.array([[x.denominator != 1 for x in row] for row in share], dtype=bool).reshape(floors.shape)
    return round_table(floors, has_fraction, np.asarray(sizes), np.asarray(class_counts))


def fit_margins(weights: np.ndarray, row_sums: np.ndarray, col_sums: np.ndarray, iterations: int = 10_000, tol: float = 1e-9) -> np.ndarray:
    """Scale positive ``weights`` so rows and columns add to the given sums (Sinkhorn-Knopp)."""
    table = np.asarray(weights, dtype=np.float64).copy()
    rows = np.asarray(row_sums, dtype=np.float64)
    cols = np.asarray(col_sums, dtype=np.float64)
    table[rows == 0, :] = 0.0
    table[:, cols == 0] = 0.0
    for _ in range(iterations):
        row_total = table.sum(axis=1)
        table *= np.divide(rows, row_total, out=np.zeros_like(rows), where=row_total > 0)[:, None]
        col_total = table.sum(axis=0)
        table *= np.divide(cols, col_total, out=np.zeros_like(cols), where=col_total > 0)[None, :]
        if np.abs(table.sum(axis=1) - rows).max(initial=0.0) <= tol * max(1.0, rows.max(initial=1.0)):
            break
    return table


def dirichlet_table(sizes: list[int], class_counts: list[int], alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Label-skewed ``a[k][c]``: row sums ``sizes``, column sums ``class_counts``.

    Each client's class mix is drawn from Dir(alpha * p), p the pool's class proportions
    (Hsu et al., 2019): small alpha gives clients dominated by one class, large alpha
    approaches the stratified split. The draw is then fitted to the margins, so client sizes
    and the number of images used per class stay exactly as planned.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    prior = counts / counts.sum()
    concentration = np.maximum(alpha * prior, 1e-3)
    mixes = np.stack([rng.dirichlet(concentration) for _ in sizes]) if sizes else np.zeros((0, len(counts)))
    mixes = np.maximum(np.nan_to_num(mixes, nan=0.0), 1e-12) * (prior > 0)[None, :]
    fitted = fit_margins(mixes, np.asarray(sizes), counts)
    snapped = np.where(np.abs(fitted - np.rint(fitted)) < 1e-6, np.rint(fitted), fitted)
    floors = np.floor(snapped).astype(np.int64)
    return round_table(floors, snapped - floors > 0, np.asarray(sizes), np.asarray(class_counts))
