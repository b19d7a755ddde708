"""Aggregating local LIME explanations: NormLIME (eq. 3-5, 7-9) and SP-LIME (eq. 6).

Everything here is plain numpy on the weight matrix ``M`` of the paper: rows are local
explanations ``w_{x_j}`` (as returned by ``LocalLime.explain``), columns are features
``c_i``; ``omega_i`` is column ``i``; ``v`` holds the rows' L1 norms.

* NormLIME, eq. (5): ``S(c_i) = omega_i^T diag(v^-1) omega_i / ||omega_i||_0``, which is
  eq. (3)-(4)'s mean over ``E(c_i)`` of ``gamma(w, i) |w_i| = w_i^2 / ||w||_1``.  Features
  used by no local model (``||omega_i||_0 = 0``) score 0.
* Class-specific NormLIME, eq. (7)-(9): the same function applied to the rows whose ``x_j``
  the model labels ``y`` -- one code path for eq. (3), (5) and (9).
* SP-LIME importance, eq. (6): ``I(c_i) = ||omega_i||_2``, globally or over the rows of one
  predicted label (the paper's "LIME conditioned on the label").
* Display filter (the paper shows "only the input features that are positively
  correlated with the prediction"): a feature is kept for label ``y`` iff the mean of its
  non-zero local weights over the explanations with predicted label ``y`` is positive,
  i.e. ``sum_{j: f(x_j)=y} M[j, i] > 0`` (:func:`positive_features`).  Both NormLIME and
  LIME use this one rule.  Features with a negative or zero mean, and features no local
  model of the label uses, are shown as 0.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "normlime_scores",
    "splime_importance",
    "class_normlime",
    "class_splime",
    "positive_features",
    "class_positive_features",
    "class_usage_counts",
    "display_class_maps",
]


def _matrix(m) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"M must be 2-D (explanations x features), got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("the weight matrix M contains non-finite values")
    return m


def normlime_scores(m) -> np.ndarray:
    """NormLIME importance of every feature, eq. (5) (= eq. (3)-(4)); unused features -> 0.

    Rows that are all zero (a local model that found nothing to explain) belong to no
    ``E(c_i)`` and are ignored.
    """
    m = _matrix(m)
    v = np.abs(m).sum(axis=1)  # L1 norm of every local explanation
    m = m[v > 0]
    v = v[v > 0]
    if m.shape[0] == 0:
        return np.zeros(m.shape[1])
    quad = np.einsum("ji,j,ji->i", m, 1.0 / v, m)  # omega_i^T diag(v^-1) omega_i
    used = np.count_nonzero(m, axis=0)  # ||omega_i||_0 = |E(c_i)|
    return np.divide(quad, used, out=np.zeros_like(quad), where=used > 0)


def splime_importance(m) -> np.ndarray:
    """SP-LIME's global importance ``I(c_i) = ||omega_i||_2``, eq. (6)."""
    return np.sqrt(np.einsum("ji,ji->i", _matrix(m), _matrix(m)))


def _by_label(fn, m, labels, n_classes: int) -> np.ndarray:
    m = _matrix(m)
    labels = np.asarray(labels)
    if labels.shape != (m.shape[0],):
        raise ValueError(f"labels must have shape ({m.shape[0]},), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    return np.stack([fn(m[labels == y]) for y in range(n_classes)])


def class_normlime(m, labels, n_classes: int = 10) -> np.ndarray:
    """Class-specific NormLIME ``S_y(c_i)``, eq. (9), over ``E_y`` of eq. (7): (n_classes, d).

    ``labels[j]`` is the model's predicted label of the point ``x_j`` that row ``j`` explains.
    """
    return _by_label(normlime_scores, m, labels, n_classes)


def class_splime(m, labels, n_classes: int = 10) -> np.ndarray:
    """SP-LIME importance conditioned on the label: ``||omega_i||_2`` over ``E_y``."""
    return _by_label(splime_importance, m, labels, n_classes)


def positive_features(m) -> np.ndarray:
    """The display filter: True where the mean non-zero local weight is positive.

    ``sum_j M[j, i] > 0`` -- the sum over rows has the sign of the mean over ``E(c_i)``
    (zeros add nothing), so this is "the sign of the feature's mean weight over the local
    explanations that use it".  A feature no row uses is not positive.
    """
    return _matrix(m).sum(axis=0) > 0


def class_positive_features(m, labels, n_classes: int = 10) -> np.ndarray:
    """:func:`positive_features` per predicted label: bool (n_classes, d)."""
    return _by_label(positive_features, m, labels, n_classes)


def class_usage_counts(m, labels, n_classes: int = 10) -> np.ndarray:
    """``|E_y(c_i)|``: how many local explanations of label ``y`` use feature ``i``."""
    return _by_label(lambda rows: np.count_nonzero(rows, axis=0), m, labels, n_classes)


def display_class_maps(m, labels, n_classes: int = 10) -> dict[str, np.ndarray]:
    """Class maps as shown to people, plus the unfiltered scores.

    Returns ``{"normlime", "lime"}`` (display-filtered: the score where the feature is
    positively correlated with the label, else 0) and ``{"normlime_raw", "lime_raw"}``
    (eq. (9) and eq. (6) per label without the filter), each ``(n_classes, d)``.
    """
    normlime = class_normlime(m, labels, n_classes)
    lime = class_splime(m, labels, n_classes)
    keep = class_positive_features(m, labels, n_classes)
    return {
        "normlime": np.where(keep, normlime, 0.0),
        "lime": np.where(keep, lime, 0.0),
        "normlime_raw": normlime,
        "lime_raw": lime,
    }
