"""LARS-lasso feature selection for many local explanations at once, from Gram matrices.

LIME selects its ``K`` features by following the LASSO regularisation path until ``K``
are active.  scikit-learn's ``lars_path`` does this one explanation at a time in a Python
loop of about ``K`` steps, each touching the full ``(n, d)`` design; for ``K = 100`` that
costs as much as the explanation's forward passes.  Here the path runs on the
explanation's sufficient statistics -- the Gram matrix ``X^T X`` and ``X^T y`` of its
weighted, centred, unit-norm columns -- and a batch of explanations takes each step
together, so the loop's cost is paid once per step for the whole batch.

The algorithm is Efron et al.'s LARS with the lasso modification, as in ``lars_path``:

* a step moves the active coefficients along the equiangular direction until an inactive
  feature's correlation ties the active ones (it joins) or an active coefficient reaches
  zero (it leaves; no feature joins on the next step);
* the inverse of the active block of the Gram matrix is kept up to date by rank-one
  updates (Schur complement on a join, the inverse downdate on a leave), so a step costs
  ``O(d K)`` per explanation;
* a path stops, like ``lars_path``'s, once the largest correlation divided by
  ``n_samples`` falls to float32's epsilon.

What is returned, for each requested ``k``: the active set on the first stretch of the
path where ``k`` coefficients are non-zero (the same set as ``lars_path``'s first knot
with ``k`` non-zeros whenever no feature leaves on the way); the final active set if the
path ends with fewer.  Behaviour where ``lars_path`` differs, both only on degenerate
data: an exact tie between inactive features goes to the lower feature index
(``lars_path`` breaks it by its internal, swapped column order); a feature that is a
(near-)linear combination of the active ones (Schur pivot below 1e-8, where
``lars_path``'s Cholesky threshold is 1e-14: see ``_DEGENERATE_PIVOT``) is excluded from
that path for good, where ``lars_path`` warns and may reconsider it later; a path whose
active block loses positive definiteness all the same ends there.  tests/test_lars.py
checks all of this against ``lars_path``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["GramRows", "lasso_supports"]

_EPS32 = float(np.finfo(np.float32).eps)
#: a joining column whose part orthogonal to the active columns has a squared norm below
#: this (the Schur pivot; the columns have unit norm) is degenerate and excluded.
#: ``lars_path`` excludes below 1e-14 (its Cholesky ``diag < 1e-7``); the explicit inverse
#: kept here loses precision with the square of the conditioning, so a column that is
#: 99.99% a combination of the active ones (pivot 1e-8) is already excluded.  Gaussian
#: noise designs have pivots of 0.1-1; designs of a few distinct data neighbours whose
#: pixels move together reach 1e-12, where the inverse broke down (tests/test_lars.py).
_DEGENERATE_PIVOT = 1e-8


def lasso_supports(
    xy: np.ndarray,
    ks: Sequence[int],
    *,
    n_samples: int | np.ndarray,
    gram: np.ndarray | None = None,
    rows: GramRows | None = None,
    max_steps: int | None = None,
) -> list[dict[int, np.ndarray]]:
    """The LASSO supports of ``B`` problems, for each ``k`` in ``ks``.

    ``xy`` (B, d): each problem's ``X^T y``, with the columns of ``X`` scaled to unit norm.
    The Gram matrices ``X^T X`` come either whole, as ``gram`` (B, d, d), or as a
    :class:`GramRows` of the ``B`` designs, which computes only the rows of features
    that may join a path.  ``n_samples`` (one number, or one per problem) sets the
    stopping rule (``lars_path``'s ``alpha = C / n_samples``).  ``max_steps`` bounds the
    path (default ``4 * max(ks) + 20`` steps, enough for the joins and leaves of any path seen in
    practice).  Returns, per problem, ``{k: sorted feature indices}``.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if (gram is None) == (rows is None):
        raise ValueError("pass exactly one of gram (B, d, d) and rows (GramRows)")
    if xy.ndim != 2:
        raise ValueError(f"xy must be (B, d), got shape {xy.shape}")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    n_problems, d = xy.shape
    k_max = min(ks[-1], d)
    if gram is not None:
        gram = np.asarray(gram, dtype=np.float64)
        if gram.shape != (n_problems, d, d):
            raise ValueError(f"gram must be (B, d, d) = {(n_problems, d, d)}, got {gram.shape}")
        rows = _WholeGram(gram)
    elif (len(rows), rows.d) != (n_problems, d):
        raise ValueError(f"rows hold {len(rows)} problems of {rows.d} features, xy is {xy.shape}")
    steps_left = 4 * ks[-1] + 20 if max_steps is None else int(max_steps)
    path = _Path(rows, xy, k_max)
    found: list[dict[int, np.ndarray]] = [{} for _ in range(n_problems)]
    running = np.ones(n_problems, dtype=bool)
    while running.any() and steps_left > 0:
        steps_left -= 1
        corr = np.where(path.candidate, np.abs(path.c), -1.0)
        j = np.argmax(corr, axis=1)
        top = corr[np.arange(n_problems), j]
        # lars_path's stopping rule, and an exhausted candidate pool
        ended = running & ((top / n_samples <= _EPS32) | (top < 0))
        _finish(found, ended, path, ks)
        running &= ~ended
        joining = running & ~path.just_left
        added = path.join(np.flatnonzero(joining), j)
        for k in ks:
            hit = added & (path.n_active == k)
            for b in np.flatnonzero(hit):
                found[b].setdefault(k, path.support(b))
        full = running & (path.n_active >= k_max)
        _finish(found, full, path, ks)
        running &= ~full
        broken = path.step(running)
        _finish(found, broken, path, ks)
        running &= ~broken
    _finish(found, running, path, ks)
    return found


def _finish(found, which: np.ndarray, path: _Path, ks) -> None:
    for b in np.flatnonzero(which):
        support = path.support(b)
        for k in ks:
            found[b].setdefault(k, support)


class _Path:
    """The state of ``B`` LASSO paths; active features live in slots ``0 .. K-1``."""

    def __init__(self, gram_rows, xy: np.ndarray, n_slots: int):
        n_problems, d = xy.shape
        self.gram_rows = gram_rows
        self.c = xy.copy()  # current correlations X^T (y - X beta)
        self.candidate = np.ones((n_problems, d), dtype=bool)  # inactive, not excluded
        self.just_left = np.zeros(n_problems, dtype=bool)
        self.left = np.full(n_problems, -1, dtype=np.int64)  # the feature that just left
        self.n_active = np.zeros(n_problems, dtype=np.int64)
        self.feature = np.full((n_problems, n_slots), -1, dtype=np.int64)
        self.sign = np.zeros((n_problems, n_slots))
        self.beta = np.zeros((n_problems, n_slots))
        self.inverse = np.zeros((n_problems, n_slots, n_slots))  # (G_AA)^-1, by slot
        self.rows = np.zeros((n_problems, n_slots, d))  # G[A, :], by slot
        # every problem's arrays keep all n_slots slots (free ones zero), so that the
        # arithmetic of a problem never depends on the other problems of its batch
        self.width = n_slots

    def support(self, b: int) -> np.ndarray:
        return np.sort(self.feature[b][self.feature[b] >= 0])

    def join(self, idx: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Feature ``j[b]`` joins problem ``b`` for ``b`` in ``idx``; returns who did."""
        added = np.zeros(self.c.shape[0], dtype=bool)
        if idx.size == 0:
            return added
        jj = j[idx]
        slot = np.argmax(self.feature[idx] < 0, axis=1)  # the first free slot
        w = self.width
        g = self.rows[idx, :w, jj]  # G[A, j] (zero in free slots)
        u = np.matmul(self.inverse[idx, :w, :w], g[:, :, None])[:, :, 0]
        new_rows = self.gram_rows(idx, jj, self.c)
        pivot = new_rows[np.arange(idx.size), jj] - np.einsum("bs,bs->b", g, u)
        ok = pivot > _DEGENERATE_PIVOT
        self.candidate[idx, jj] = False  # joined, or excluded as degenerate
        if not ok.all():
            idx, jj, slot, u, pivot = idx[ok], jj[ok], slot[ok], u[ok], pivot[ok]
            new_rows = new_rows[ok]
        if idx.size == 0:
            return added
        u[np.arange(idx.size), slot] = -1.0  # the new row/column of the inverse is -u/pivot
        update = u[:, :, None] * (u / pivot[:, None])[:, None, :]
        if idx.size == added.size:  # everyone joins (the usual case): update in place
            self.inverse[:, :w, :w] += update
        else:
            self.inverse[idx, :w, :w] += update
        self.rows[idx, slot] = new_rows
        self.feature[idx, slot] = jj
        self.sign[idx, slot] = np.sign(self.c[idx, jj])
        self.n_active[idx] += 1
        added[idx] = True
        return added

    def step(self, running: np.ndarray) -> np.ndarray:
        """One LARS-lasso step of every running problem (the others stay where they are).

        Returns the problems whose active block is no longer positive definite (rounding
        on nearly collinear columns): they do not move, and their paths end there.

        All problems are computed together, stopped ones with a zero step length: paths of
        one batch end within a few steps of each other, and gathering the running ones
        would copy the ``(B, K, d)`` Gram rows every step.
        """
        # The feature that just left sits exactly at the active level; in exact arithmetic
        # its tie ratio is 0, which rounding could make a tiny positive step.
        may_join = self.candidate.copy()
        rows = np.flatnonzero(self.just_left)
        may_join[rows, self.left[rows]] = False
        self.just_left[:] = False
        w = self.width
        sign = self.sign[:, :w]
        occupied = self.feature[:, :w] >= 0
        moving = running & (self.n_active > 0)
        direction = np.matmul(self.inverse[:, :w, :w], sign[:, :, None])[:, :, 0]
        norm = np.einsum("bs,bs->b", sign, direction)
        broken = moving & ~(norm > 0)
        moving &= ~broken
        scale = 1.0 / np.sqrt(np.where(moving, norm, 1.0))  # lars_path's AA
        direction *= scale[:, None]
        a = np.matmul(direction[:, None, :], self.rows[:, :w])[:, 0]  # d c / d gamma
        # the active features' common |correlation|, lars_path's C
        on_path = np.take_along_axis(self.c, np.maximum(self.feature[:, :w], 0), axis=1)
        level = np.einsum("bs,bs->b", sign, on_path) / np.maximum(occupied.sum(axis=1), 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = level / scale  # to the end of the path
            for ratio in (
                (level[:, None] - self.c) / (scale[:, None] - a),
                (level[:, None] + self.c) / (scale[:, None] + a),
            ):
                ratio = np.where(may_join & (ratio > 0), ratio, np.inf)
                gamma = np.minimum(gamma, ratio.min(axis=1))
            leave = np.where(occupied, -self.beta[:, :w] / direction, np.inf)
        leave = np.where(leave > 0, leave, np.inf)
        slot = np.argmin(leave, axis=1)
        gamma_leave = leave[np.arange(slot.size), slot]
        drops = moving & (gamma_leave < gamma)
        gamma = np.where(drops, gamma_leave, gamma)
        gamma = np.where(moving, gamma, 0.0)
        self.beta[:, :w] += gamma[:, None] * np.where(occupied, direction, 0.0)
        self.c -= gamma[:, None] * a
        for b, s in zip(np.flatnonzero(drops), slot[drops], strict=True):
            self._leave(int(b), int(s))
        return broken

    def _leave(self, b: int, s: int) -> None:
        w = self.width
        inv = self.inverse[b, :w, :w]
        inv -= np.outer(inv[:, s], inv[s, :]) / inv[s, s]
        inv[s, :] = 0.0
        inv[:, s] = 0.0
        j = self.feature[b, s]
        self.candidate[b, j] = True
        self.feature[b, s] = -1
        self.sign[b, s] = 0.0
        self.beta[b, s] = 0.0
        self.rows[b, s] = 0.0
        self.n_active[b] -= 1
        self.just_left[b] = True
        self.left[b] = j


class _WholeGram:
    """Gram rows from the full matrices."""

    def __init__(self, gram: np.ndarray):
        self.gram = gram

    def __call__(self, idx: np.ndarray, j: np.ndarray, c: np.ndarray) -> np.ndarray:
        return self.gram[idx, j]


class GramRows:
    """Gram rows of unit-norm columns, computed from each problem's design when needed.

    A problem is added as ``design`` (n, d) with its ``column_norms`` (d,): its columns are
    ``design / column_norms`` (a zero column stays zero; scaling the few rows needed is
    cheaper than scaling the design).  Rows come in blocks of the candidates with the
    largest ``|correlation|``, the likeliest to join next: one matrix product per block
    instead of one matrix-vector product per joining feature.  The first block
    (``first`` rows by ``|X^T y|``) is computed by :meth:`add` itself, while the design
    is still in cache; a feature outside the blocks so far brings in the next ``EXTRA``.
    """

    EXTRA = 32

    def __init__(self, d: int):
        self.d = int(d)
        self.designs: list[np.ndarray] = []
        self.inv_norms: list[np.ndarray] = []
        self.where: list[np.ndarray] = []  # feature -> its row in the cache, -1: not yet
        self.cache: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.designs)

    def add(self, design: np.ndarray, column_norms: np.ndarray, abs_xy: np.ndarray, first: int):
        norms = np.asarray(column_norms, dtype=np.float64)
        if design.ndim != 2 or design.shape[1] != self.d or norms.shape != (self.d,):
            raise ValueError(f"design must be (n, {self.d}) with {self.d} column norms")
        self.designs.append(design)
        self.inv_norms.append(np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0))
        self.where.append(np.full(self.d, -1, dtype=np.int64))
        self.cache.append(np.empty((0, self.d)))
        top = np.argsort(-np.asarray(abs_xy), kind="stable")[: min(int(first), self.d)]
        self._compute(len(self) - 1, top)

    def _compute(self, b: int, features: np.ndarray) -> None:
        x = self.designs[b]
        rows = x[:, features].T @ x
        rows *= self.inv_norms[b][features][:, None] * self.inv_norms[b][None, :]
        self.where[b][features] = np.arange(features.size) + self.cache[b].shape[0]
        self.cache[b] = np.concatenate([self.cache[b], rows]) if self.cache[b].size else rows

    def block(self, b: int, features: np.ndarray) -> np.ndarray:
        """The Gram block of ``features`` of problem ``b`` (their rows computed first if
        need be)."""
        missing = features[self.where[b][features] < 0]
        if missing.size:
            self._compute(b, missing)
        return self.cache[b][self.where[b][features]][:, features]

    def __call__(self, idx: np.ndarray, j: np.ndarray, c: np.ndarray) -> np.ndarray:
        for b, jb in zip(idx, j, strict=True):
            if self.where[b][jb] < 0:
                missing = np.flatnonzero(self.where[b] < 0)
                order = np.argsort(-np.abs(c[b, missing]), kind="stable")
                self._compute(b, np.union1d(missing[order[: self.EXTRA - 1]], [jb]))
        return np.stack([self.cache[b][self.where[b][jb]] for b, jb in zip(idx, j, strict=True)])
