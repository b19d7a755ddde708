"""Sparse local linear models from perturbation samples: LIME's step 4-5.

For each explanation: weight the samples by proximity, centre and scale the columns,
select ``K`` features along the LASSO path, then fit weighted least squares on them.
The LASSO paths of a batch of explanations run together (``explainers.lars``), from the
Gram rows of the features that join (one matrix product per block of candidates, not
``K`` passes over the ``(n, d)`` design as ``lars_path`` makes); the least-squares fit
then uses the normal equations of the ``K`` selected columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from .lars import GramRows, lasso_supports

__all__ = [
    "fit_local_model",
    "fit_local_models",
    "fit_local_models_batch",
    "fit_local_models_columns",
]

Fit = tuple[np.ndarray, float, float]  # (w (d,), intercept, weighted R^2)


@dataclass
class _Statistics:
    """One explanation's weighted, centred statistics."""

    design: np.ndarray  # (n, d) weighted, centred columns
    xy: np.ndarray  # (d,) the columns scaled to unit norm against the centred target
    norms: np.ndarray  # (d,) the columns' norms (0: the feature never moved)
    yc: np.ndarray  # (n,) the weighted, centred target
    z_bar: np.ndarray  # (d,) weighted mean perturbation
    y_bar: float
    ss_tot: float  # weighted total sum of squares of y
    flat: bool  # f did not vary over the samples: nothing to explain

    @property
    def n_usable(self) -> int:
        return int(np.count_nonzero(self.norms))


def fit_local_model(z: np.ndarray, y: np.ndarray, pi: np.ndarray, n_features: int) -> Fit:
    """LASSO-path selection of ``n_features`` columns, then weighted least squares on them.

    ``z`` (n, d) perturbations, ``y`` (n,) model outputs, ``pi`` (n,) sample weights.
    Returns ``(w (d,), intercept, weighted R^2)``; ``w`` has at most ``n_features`` non-zeros.
    """
    return fit_local_models(z, y, pi, (n_features,))[0]


def fit_local_models(z: np.ndarray, y: np.ndarray, pi: np.ndarray, ks: Sequence[int]) -> list[Fit]:
    """:func:`fit_local_model` for several ``K`` at once, sharing one LASSO path."""
    return fit_local_models_batch([z], [y], [pi], ks)[0]


def fit_local_models_batch(
    zs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    pis: Sequence[np.ndarray],
    ks: Sequence[int],
) -> list[list[Fit]]:
    """:func:`fit_local_models` for a batch of explanations (same ``d``), one LASSO pass.

    Explanations may have different numbers of samples (distinct neighbours drawn from
    data, weighted by their counts).  Returns, per explanation, one fit per ``k`` in
    ``ks`` (in that order).
    """
    if not zs:
        return []
    ks = [int(k) for k in ks]
    d = np.shape(zs[0])[1]
    stats, on_path = [], []
    rows = GramRows(d)
    for i, (z, y, pi) in enumerate(zip(zs, ys, pis, strict=True)):
        s = _statistics(z, y, pi)
        stats.append(s)
        if not s.flat and min(ks) < s.n_usable:
            on_path.append(i)
            rows.add(s.design, s.norms, np.abs(s.xy), first=max(ks) + 16)
    supports: dict[int, dict[int, np.ndarray]] = {}
    if on_path:
        path_ks = sorted({k for k in ks if k < max(stats[i].n_usable for i in on_path)})
        # Unit-norm target too: LARS stops once correlations fall below float32 epsilon
        # (times n), and a saturated softmax varies by only ~1e-6 around a confident x0.
        found = lasso_supports(
            np.stack([stats[i].xy / np.sqrt(stats[i].ss_tot) for i in on_path]),
            path_ks,
            n_samples=np.array([np.shape(zs[i])[0] for i in on_path]),
            rows=rows,
        )
        supports = dict(zip(on_path, found, strict=True))
    slot = {i: b for b, i in enumerate(on_path)}
    out = []
    for i, s in enumerate(stats):
        if s.flat:
            out.append([(np.zeros(d), s.y_bar, 0.0) for _ in ks])
            continue
        usable = np.flatnonzero(s.norms)
        fits = []
        for k in ks:
            if k >= usable.size:  # dense: every usable feature
                fits.append(_least_squares_fit(s, usable))
            else:  # every selected feature joined its path, so its Gram row is known
                selected = supports[i][k]
                fits.append(_least_squares_fit(s, selected, rows.block(slot[i], selected)))
        out.append(fits)
    return out


def fit_local_models_columns(
    zs: Sequence[np.ndarray],
    columns: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    pis: Sequence[np.ndarray],
    ks: Sequence[int],
    d: int,
) -> list[list[Fit]]:
    """:func:`fit_local_models_batch` for designs that hold only some of the ``d`` features.

    ``zs[i]`` (n_i, len(columns[i])) are explanation i's candidate columns, the features
    ``columns[i]``; every other feature is constant for it (no slope).  Each design is
    padded with zero columns to the batch's widest, fitted, and its weights put back in
    place: the same fits as on the full (n_i, d) designs with those columns zero, at the
    cost of the candidates only (a data neighbourhood moves about half of MNIST's pixels).
    """
    width = max((c.size for c in columns), default=0)
    padded = []
    for z, c in zip(zs, columns, strict=True):
        if z.shape[1] != c.size:
            raise ValueError("each design needs one column per listed feature")
        if c.size == width:
            padded.append(z)
        else:
            full = np.zeros((z.shape[0], max(width, 1)), dtype=z.dtype)
            full[:, : c.size] = z
            padded.append(full)
    if width == 0:  # nothing varies anywhere: every model is the intercept alone
        padded = [np.zeros((z.shape[0], 1), dtype=np.float32) for z in zs]
    fits = fit_local_models_batch(padded, ys, pis, ks)
    out = []
    for image_fits, c in zip(fits, columns, strict=True):
        row = []
        for w, b, r2 in image_fits:
            full = np.zeros(d)
            full[c] = w[: c.size]
            row.append((full, b, r2))
        out.append(row)
    return out


def _statistics(z: np.ndarray, y: np.ndarray, pi: np.ndarray) -> _Statistics:
    z = np.asarray(z)
    y = np.asarray(y, dtype=np.float64)
    pi = np.asarray(pi, dtype=np.float64)
    d = z.shape[1]
    out = np.empty(z.shape)
    total = pi.sum()
    # The weighted mean enters the statistics only to second order (the centred columns
    # are orthogonal to the weights), so the input's precision is enough for it.
    z_bar = (pi.astype(z.dtype) @ z).astype(np.float64) / total
    y_bar = float(pi @ y / total)
    sw = np.sqrt(pi)
    yc = (y - y_bar) * sw
    ss_tot = float(yc @ yc)
    if ss_tot <= 1e-24 * max(1.0, y_bar * y_bar) * len(y):
        return _Statistics(out, np.zeros(d), np.zeros(d), yc, z_bar, y_bar, ss_tot, True)
    np.subtract(z, z_bar, out=out)  # float64 from here on
    out *= sw[:, None]
    norms = np.sqrt(np.einsum("ij,ij->j", out, out))
    xy = out.T @ yc
    xy *= np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    return _Statistics(out, xy, norms, yc, z_bar, y_bar, ss_tot, False)


def _least_squares_fit(s: _Statistics, selected: np.ndarray, g: np.ndarray | None = None) -> Fit:
    """Weighted least squares (with intercept) on the ``selected`` columns, from statistics.

    ``g``: the unit-norm columns' Gram block of ``selected``, where it is known already.
    """
    n, d = s.design.shape
    xy = s.xy[selected]
    if n <= 2 * selected.size:
        # Few samples per column: the normal equations would square a poor conditioning.
        x = s.design[:, selected] / s.norms[selected]
        b = np.linalg.lstsq(x, s.yc, rcond=None)[0]  # in unit-norm column units
        r = s.yc - x @ b
        residual = float(r @ r)
    else:
        if g is None:
            x = s.design[:, selected]
            g = x.T @ x
            g /= np.outer(s.norms[selected], s.norms[selected])
        b = _solve_normal_equations(g, xy)  # in unit-norm column units
        residual = s.ss_tot - 2.0 * float(b @ xy) + float(b @ g @ b)
    coef = b / s.norms[selected]
    w = np.zeros(d)
    w[selected] = coef
    return w, s.y_bar - float(s.z_bar[selected] @ coef), 1.0 - residual / s.ss_tot


def _solve_normal_equations(g: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """argmin ||X b - y|| from ``X^T X`` and ``X^T y``: Cholesky, least squares as the fallback.

    The columns are independent perturbations, so ``X^T X`` is well conditioned (condition
    number ~20 for 784 Gaussian columns and 2,000 samples); (near-)collinear columns fall
    back to the minimum-norm solution of the normal equations.
    """
    if g.size == 0:
        return np.zeros(0)
    try:
        return cho_solve(cho_factor(g, check_finite=False), xy, check_finite=False)
    except LinAlgError:
        return np.linalg.lstsq(g, xy, rcond=None)[0]
