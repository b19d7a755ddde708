"""Noisy linear imputation (ROAD, Rong et al., ICML 2022), for a whole batch at once.

Each removed pixel takes the weighted mean of its 8 neighbours (weight 1/6 for the four
edge neighbours, 1/12 for the four corner ones; neighbours outside the image are left
out), whether those are kept or removed themselves: one sparse linear system per image,
solved exactly.  Then Gaussian noise of standard deviation ``noise`` is added to the
imputed values.  Because an imputed pixel is an interpolation of its surroundings, the
removal mask's outline carries (almost) no information of its own, which is ROAD's
argument against a constant fill whose shape a model can read.

The systems of all images are one block-diagonal matrix, so a batch is one sparse solve
(every channel shares its image's system and is a right-hand side).  A removed region
always borders a kept pixel unless the whole image is removed, so the matrix is
non-singular whenever one pixel per image is kept; removing everything is refused.

The equations and weights follow ROAD's reference implementation
(github.com/tleemann/road_evaluation, ``imputations.py``) as Quantus 0.6 reproduces it.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve

__all__ = ["NEIGHBOUR_WEIGHTS", "noisy_linear_imputation"]

#: (row offset, column offset) -> weight
NEIGHBOUR_WEIGHTS = (
    ((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
    ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6),
)  # fmt: skip


def noisy_linear_imputation(
    images: np.ndarray, removed: np.ndarray, *, noise: float = 0.01, rng=None
) -> np.ndarray:
    """``images`` (N, C, H, W) with the pixels where ``removed`` (N, H, W) is True imputed.

    ``rng`` (a numpy Generator or seed) draws the noise; with ``noise=0`` the result is
    deterministic.  The images are not modified.
    """
    images = np.asarray(images, dtype=np.float64)
    removed = np.asarray(removed, dtype=bool)
    n, c, h, w = images.shape
    if removed.shape != (n, h, w):
        raise ValueError(f"removed must be (N, H, W) = {(n, h, w)}, got {removed.shape}")
    if np.any(removed.reshape(n, -1).all(axis=1)):
        raise ValueError("noisy linear imputation needs at least one kept pixel per image")
    out = images.copy()
    flat_removed = removed.reshape(-1)
    n_vars = int(flat_removed.sum())
    if n_vars == 0:
        return out
    # variable number of every removed pixel (over the batch), -1 for kept ones
    var = np.full(flat_removed.size, -1, dtype=np.int64)
    var[flat_removed] = np.arange(n_vars)
    img, row, col = np.nonzero(removed)
    values = images.transpose(0, 2, 3, 1).reshape(-1, c)  # (N*H*W, C)
    diag = np.zeros(n_vars)
    rhs = np.zeros((n_vars, c))
    rows, cols, data = [], [], []
    ids = np.arange(n_vars)
    for (dr, dc), weight in NEIGHBOUR_WEIGHTS:
        r2, c2 = row + dr, col + dc
        inside = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
        flat = (img * h + np.clip(r2, 0, h - 1)) * w + np.clip(c2, 0, w - 1)
        diag[inside] += weight
        unknown = inside & (var[flat] >= 0)
        known = inside & ~unknown
        rows.append(ids[unknown])
        cols.append(var[flat[unknown]])
        data.append(np.full(int(unknown.sum()), -weight))
        rhs[known] += weight * values[flat[known]]
    rows.append(ids)
    cols.append(ids)
    data.append(diag)
    matrix = coo_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_vars, n_vars),
    ).tocsc()
    solved = spsolve(matrix, rhs).reshape(n_vars, c)
    if noise:
        solved = solved + noise * np.random.default_rng(rng).standard_normal(solved.shape)
    filled = values.copy()
    filled[flat_removed] = solved
    out[:] = filled.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    return out
