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
* Display (the paper shows "only the input features that are positively correlated with
  the prediction. That is, when I^SP(c_i) or S(c_i) is positive"): the scores are taken
  *signed* -- each explanation contributes its signed weight ``w_i`` where eq. (3)/(9) has
  ``|w_i|``, and ``w_i |w_i|`` where eq. (6) has ``w_i^2`` -- and a feature is shown iff its
  signed score is positive, with that value (:func:`positive_evidence`)::

      NormLIME shown:  max(0, 1/|E_y(c_i)| * sum_{w in E_y(c_i)} gamma(w, i) * w_i)
      LIME shown:      sqrt(max(0, sum_{j: f(x_j) = y} w_ji * |w_ji|))

  Where all of a feature's local weights are positive this is exactly eq. (9) / eq. (6);
  where all are negative the feature is hidden; a feature with weights of both signs shows
  its net positive support.  The rule is continuous, so a feature whose sign is uncertain
  does not jump between 0 and a large value from one run to the next (the stability study
  in docs/explainers-lime.md measured that jump as the largest source of between-seed
  disagreement under a hard sign threshold).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "normlime_scores",
    "splime_importance",
    "class_normlime",
    "class_splime",
    "signed_normlime_scores",
    "signed_splime_importance",
    "positive_evidence",
    "class_usage_counts",
    "usage_spread",
    "display_class_maps",
]

# The class maps shown as "NormLIME" and "LIME" are both aggregated from the same local
# LIME explanations (precompute): NormLIME by eq. (9), LIME by SP-LIME's eq. (6).


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
    return _normlime(m, signed=False)


def _normlime(m, *, signed: bool) -> np.ndarray:
    """Mean over ``E(c_i)`` of ``gamma(w, i) |w_i|`` (eq. 5), or of ``gamma(w, i) w_i``."""
    m = _matrix(m)
    v = np.abs(m).sum(axis=1)  # L1 norm of every local explanation
    m = m[v > 0]
    v = v[v > 0]
    if m.shape[0] == 0:
        return np.zeros(m.shape[1])
    # omega_i^T diag(v^-1) omega_i, with one factor signed for the display rule
    total = np.einsum("ji,j,ji->i", m, 1.0 / v, np.abs(m) if signed else m)
    used = np.count_nonzero(m, axis=0)  # ||omega_i||_0 = |E(c_i)|
    return np.divide(total, used, out=np.zeros_like(total), where=used > 0)


def splime_importance(m) -> np.ndarray:
    """SP-LIME's global importance ``I(c_i) = ||omega_i||_2``, eq. (6)."""
    m = _matrix(m)
    return np.sqrt(np.einsum("ji,ji->i", m, m))


def _by_label(fn, m, labels, n_classes: int | None) -> np.ndarray:
    m = _matrix(m)
    labels = np.asarray(labels)
    if n_classes is None:  # the labels say how many classes there are
        n_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.shape != (m.shape[0],):
        raise ValueError(f"labels must have shape ({m.shape[0]},), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    return np.stack([fn(m[labels == y]) for y in range(n_classes)])


def class_normlime(m, labels, n_classes: int | None = None) -> np.ndarray:
    """Class-specific NormLIME ``S_y(c_i)``, eq. (9), over ``E_y`` of eq. (7): (n_classes, d).

    ``labels[j]`` is the model's predicted label of the point ``x_j`` that row ``j`` explains;
    ``n_classes`` defaults to the largest label + 1 (pass it when a class may be absent).
    """
    return _by_label(normlime_scores, m, labels, n_classes)


def class_splime(m, labels, n_classes: int | None = None) -> np.ndarray:
    """SP-LIME importance conditioned on the label: ``||omega_i||_2`` over ``E_y``."""
    return _by_label(splime_importance, m, labels, n_classes)


def signed_normlime_scores(m) -> np.ndarray:
    """Eq. (3)/(5) with the signed weight: mean over ``E(c_i)`` of ``gamma(w, i) * w_i``."""
    return _normlime(m, signed=True)


def signed_splime_importance(m) -> np.ndarray:
    """Eq. (6) with the signed square: ``sign(s) sqrt(|s|)``, ``s = sum_j w_ji |w_ji|``."""
    m = _matrix(m)
    s = np.einsum("ji,ji->i", m, np.abs(m))
    return np.sign(s) * np.sqrt(np.abs(s))


def positive_evidence(m) -> dict[str, np.ndarray]:
    """The display rule for one set of local explanations (rows of ``M``).

    Returns ``{"normlime": ..., "lime": ...}``: the positive part of the signed NormLIME
    score and of the signed SP-LIME importance (see the module docstring).  Both are 0
    for features no row uses and for features whose signed score is not positive.
    """
    return {
        "normlime": np.maximum(signed_normlime_scores(m), 0.0),
        "lime": np.maximum(signed_splime_importance(m), 0.0),
    }


def class_usage_counts(m, labels, n_classes: int | None = None) -> np.ndarray:
    """``|E_y(c_i)|``: how many local explanations of label ``y`` use feature ``i``."""
    return _by_label(lambda rows: np.count_nonzero(rows, axis=0), m, labels, n_classes)


def usage_spread(usage: np.ndarray) -> np.ndarray:
    """Per class: the coefficient of variation of ``|E_y(c_i)|`` over the used pixels.

    0 means every used pixel enters the same number of local models, so NormLIME's
    ``1/|E_y(c_i)|`` is one constant per class and does nothing; the larger it is, the
    more the normalisation reweights rarely and often selected pixels.
    """
    usage = np.asarray(usage, dtype=np.float64).reshape(len(usage), -1)
    out = np.zeros(len(usage))
    for c, row in enumerate(usage):
        used = row[row > 0]
        if used.size > 1 and used.mean() > 0:
            out[c] = used.std() / used.mean()
    return out


def display_class_maps(m, labels, n_classes: int | None = None) -> dict[str, np.ndarray]:
    """Class maps as shown to people, plus the unsigned scores of the paper.

    Returns ``{"normlime", "lime"}`` (:func:`positive_evidence` per predicted label) and
    ``{"normlime_raw", "lime_raw"}`` (eq. (9) and eq. (6) per label, unsigned), each
    ``(n_classes, d)``.
    """
    return {
        "normlime": np.maximum(_by_label(signed_normlime_scores, m, labels, n_classes), 0.0),
        "lime": np.maximum(_by_label(signed_splime_importance, m, labels, n_classes), 0.0),
        "normlime_raw": class_normlime(m, labels, n_classes),
        "lime_raw": class_splime(m, labels, n_classes),
    }
