"""Noisy linear imputation (ROAD, Rong et al., ICML 2022), for a whole batch at once.

Each removed pixel takes the weighted mean of its 8 neighbours (weight 1/6 for the four
edge neighbours, 1/12 for the four corner ones; neighbours outside the image are left
out), whether those are kept or removed themselves: one sparse linear system per image,
solved exactly.  Then Gaussian noise of standard deviation ``noise`` is added to the
imputed values.  Because an imputed pixel is an interpolation of its surroundings, the
removal mask's outline carries (almost) no information of its own, which is ROAD's
argument against a constant fill whose shape a model can read.

The systems of all images are one block-diagonal matrix, so a batch is one solve (every
channel shares its image's system and is a right-hand side).  A removed region always
borders a kept pixel unless the whole image is removed, so the matrix is symmetric
positive definite (a grid Laplacian with fixed boundary values) whenever one pixel per
image is kept; removing everything is refused.

How it is solved: with the unknowns numbered row by row, a pixel's neighbours are at most
``W + 1`` unknowns away, so the matrix is banded with half-bandwidth <= ``W + 1`` across
the whole batch, and a banded Cholesky solve (LAPACK ``pbsv``) costs about
``n * (W + 1)**2``.  For narrow images that beats a general sparse LU: MNIST, 100 images at
the nine ROAD percentages, 0.14 s instead of 0.81 s, the same values to 2e-15.  The band
grows with the width while a sparse LU's fill grows more slowly, so images wider than
``BANDED_MAX_WIDTH`` use SuperLU (measured on random masks removing 50-80%: banded faster
up to 128 pixels wide, 1.3-2.8x slower at 224).

The equations and weights follow ROAD's reference implementation
(github.com/tleemann/road_evaluation, ``imputations.py``) as Quantus 0.6 reproduces it.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dpbsv
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve

__all__ = ["BANDED_MAX_WIDTH", "NEIGHBOUR_WEIGHTS", "noisy_linear_imputation"]

#: widest image (pixels) solved as a banded system; wider ones use a sparse LU
BANDED_MAX_WIDTH = 128

#: (row offset, column offset) -> weight
NEIGHBOUR_WEIGHTS = (
    ((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
    ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6),
)  # fmt: skip


def noisy_linear_imputation(
    images: np.ndarray, removed: np.ndarray, *, noise: float = 0.01, rng=None,
    banded: bool | None = None,
) -> np.ndarray:  # fmt: skip
    """``images`` (N, C, H, W) with the pixels where ``removed`` (N, H, W) is True imputed.

    ``rng`` (a numpy Generator or seed) draws the noise; with ``noise=0`` the result is
    deterministic.  ``banded`` forces the solver (default: banded up to
    ``BANDED_MAX_WIDTH`` pixels wide).  The images are not modified.
    """
    images = np.asarray(images, dtype=np.float64)
    removed = np.asarray(removed, dtype=bool)
    n, c, h, w = images.shape
    if removed.shape != (n, h, w):
        raise ValueError(f"removed must be (N, H, W) = {(n, h, w)}, got {removed.shape}")
    if np.any(removed.reshape(n, -1).all(axis=1)):
        raise ValueError("noisy linear imputation needs at least one kept pixel per image")
    out = images.copy()
    n_vars = int(removed.sum())
    if n_vars == 0:
        return out
    # every grid below carries a one-pixel frame of "outside" around each image, so that a
    # neighbour is a shifted slice: no bounds checks, no per-pixel gathers
    var = np.full((n, h + 2, w + 2), -1, dtype=np.int64)  # unknown's number, -1 if none
    var[:, 1:-1, 1:-1][removed] = np.arange(n_vars)  # row by row over the batch
    known_values = np.zeros((n, h + 2, w + 2, c))
    known_values[:, 1:-1, 1:-1] = images.transpose(0, 2, 3, 1) * ~removed[..., None]
    inside = np.pad(np.ones((h, w)), 1)
    diag = np.zeros((h, w))
    rhs = np.zeros((n, h, w, c))
    lower_rows, lower_cols, lower_data = [], [], []
    for (dr, dc), weight in NEIGHBOUR_WEIGHTS:
        diag += weight * _shifted(inside, dr, dc, h, w)
        rhs += weight * _shifted(known_values, dr, dc, h, w)
        if (dr, dc) < (0, 1):  # a neighbour numbered before the pixel: the lower triangle
            neighbour = _shifted(var, dr, dc, h, w)[removed]
            unknown = neighbour >= 0
            lower_rows.append(np.flatnonzero(unknown))
            lower_cols.append(neighbour[unknown])
            lower_data.append(np.full(int(unknown.sum()), -weight))
    diag = np.broadcast_to(diag, removed.shape)[removed]
    rhs = rhs[removed]
    lower = [np.concatenate(v) for v in (lower_rows, lower_cols, lower_data)]
    use_banded = w <= BANDED_MAX_WIDTH if banded is None else banded
    solved = (_solve_banded if use_banded else _solve_sparse)(diag, *lower, rhs)
    if noise:
        solved = solved + noise * np.random.default_rng(rng).standard_normal(solved.shape)
    filled = images.transpose(0, 2, 3, 1).copy()
    filled[removed] = solved
    out[:] = filled.transpose(0, 3, 1, 2)
    return out


def _shifted(padded: np.ndarray, dr: int, dc: int, h: int, w: int) -> np.ndarray:
    """The (..., H, W[, C]) view of a framed (..., H + 2, W + 2[, C]) grid at offset
    (dr, dc): each pixel's neighbour there."""
    if padded.ndim == 2:
        return padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]
    return padded[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]


def _solve_banded(diag, rows, cols, data, rhs) -> np.ndarray:
    """Cholesky solve of the symmetric system with diagonal ``diag`` and lower-triangle
    entries (rows, cols, data), stored as LAPACK's lower band."""
    offset = rows - cols
    # column-major, as LAPACK stores it: solved in place, without copies
    band = np.zeros((int(offset.max(initial=0)) + 1, len(diag)), order="F")
    band[0] = diag
    band[offset, cols] = data
    _factor, solved, info = dpbsv(band, np.asfortranarray(rhs), lower=1, overwrite_ab=1,
                                  overwrite_b=1)  # fmt: skip
    if info != 0:  # pragma: no cover - the matrix is positive definite by construction
        raise np.linalg.LinAlgError(f"banded Cholesky failed (LAPACK info {info})")
    return solved


def _solve_sparse(diag, rows, cols, data, rhs) -> np.ndarray:
    """The same system by a sparse LU (SuperLU), for images too wide for the band."""
    n_vars = len(diag)
    ids = np.arange(n_vars)
    matrix = coo_matrix(
        (np.concatenate([diag, data, data]),
         (np.concatenate([ids, rows, cols]), np.concatenate([ids, cols, rows]))),
        shape=(n_vars, n_vars),
    ).tocsc()  # fmt: skip
    return spsolve(matrix, rhs).reshape(n_vars, -1)
