"""NormLIME and SP-LIME aggregation (explainers.normlime) against the paper's formulas."""

from __future__ import annotations

import numpy as np
import pytest

from explainers.normlime import (
    class_normlime,
    class_splime,
    class_usage_counts,
    display_class_maps,
    normlime_scores,
    positive_evidence,
    signed_normlime_scores,
    signed_splime_importance,
    splime_importance,
)


def sparse_matrix(rng, n_rows=40, n_cols=30, k=5):
    """Local explanations with exactly k non-zero weights each, of both signs."""
    m = np.zeros((n_rows, n_cols))
    for j in range(n_rows):
        cols = rng.choice(n_cols, size=k, replace=False)
        m[j, cols] = rng.normal(0, 1, size=k) * rng.lognormal(0, 1)
    return m


def eq3_loop(m):
    """Eq. (3)-(4) written literally: mean over E(c_i) of gamma(w, i) * |w_i|."""
    n_rows, n_cols = m.shape
    s = np.zeros(n_cols)
    for i in range(n_cols):
        e_ci = [m[j] for j in range(n_rows) if m[j, i] != 0]
        if not e_ci:
            continue  # "If a feature c_i is not utilized in any local models, ... 0"
        total = 0.0
        for w in e_ci:
            gamma = abs(w[i]) / sum(abs(w[k]) for k in range(n_cols))
            total += gamma * abs(w[i])
        s[i] = total / len(e_ci)
    return s


def eq5_matrix(m):
    """Eq. (5) written literally with diag(v^-1) and the L0 norm."""
    v = np.abs(m).sum(axis=1)
    d = np.diag(1.0 / v)
    out = np.zeros(m.shape[1])
    for i in range(m.shape[1]):
        omega = m[:, i]
        l0 = np.count_nonzero(omega)
        out[i] = omega @ d @ omega / l0 if l0 else 0.0
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eq3_equals_eq5_on_random_matrices(seed):
    rng = np.random.default_rng(seed)
    m = sparse_matrix(rng, n_rows=25 + seed * 10, n_cols=20, k=4)
    m[:, 7] = 0.0  # a feature no local model uses
    expected3 = eq3_loop(m)
    expected5 = eq5_matrix(m)
    np.testing.assert_allclose(expected3, expected5, rtol=1e-12)
    got = normlime_scores(m)
    np.testing.assert_allclose(got, expected3, rtol=1e-12)
    assert got[7] == 0.0
    assert np.all(got[np.count_nonzero(m, axis=0) > 0] > 0)


def test_normlime_differs_from_a_plain_mean_and_from_splime():
    # the normalisation matters: a feature that is large in a row where it is one of many
    # and a feature that dominates its row get different NormLIME but similar L2 scores
    m = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.2]])
    s = normlime_scores(m)
    # column 3: rows (1,1,1,1) -> 1/4; (0,0,0,1.2) -> 1.44/1.2 = 1.2; mean over 2 rows
    np.testing.assert_allclose(s, [0.25, 0.25, 0.25, (0.25 + 1.2) / 2])
    np.testing.assert_allclose(splime_importance(m), [1, 1, 1, np.sqrt(1 + 1.44)])


def test_splime_against_a_hand_computation():
    m = np.array(
        [
            [3.0, 0.0, -4.0, 0.0],
            [0.0, 2.0, 0.0, 0.0],
            [4.0, 0.0, 3.0, 0.0],
        ]
    )
    # ||omega_i||_2 by hand: sqrt(9+16)=5, 2, sqrt(16+9)=5, 0
    np.testing.assert_allclose(splime_importance(m), [5.0, 2.0, 5.0, 0.0])
    labels = np.array([1, 0, 1])
    # conditioned on the label: label 0 has row 1 only; label 1 rows 0 and 2
    np.testing.assert_allclose(class_splime(m, labels, 2), [[0, 2, 0, 0], [5, 0, 5, 0]])


def test_class_specific_is_the_same_code_path_on_each_partition():
    rng = np.random.default_rng(5)
    m = sparse_matrix(rng, n_rows=60, n_cols=25, k=6)
    labels = rng.integers(0, 3, size=60)
    by_class = class_normlime(m, labels, 3)
    for y in range(3):
        np.testing.assert_allclose(by_class[y], eq3_loop(m[labels == y]), rtol=1e-12)
    # a label with no local explanations scores 0 everywhere
    assert np.all(class_normlime(m, labels, 4)[3] == 0)
    counts = class_usage_counts(m, labels, 3)
    for y in range(3):
        np.testing.assert_array_equal(counts[y], np.count_nonzero(m[labels == y], axis=0))


def test_all_zero_rows_are_ignored():
    m = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, -2.0]])
    np.testing.assert_allclose(normlime_scores(m), [1.0, 0.0, 1.0])


def test_display_rule_against_a_hand_computation():
    m = np.array(
        [
            [1.0, -1.0, 2.0, 0.0, -3.0],
            [2.0, 3.0, -2.0, 0.0, 1.0],
            [0.0, 0.0, 0.0, 0.0, 1.0],
        ]
    )
    # row L1 norms 7, 8, 1.  Signed NormLIME (mean over E(c_i) of w_i |w_i| / ||w||_1):
    #   c0: (1/7 + 4/8) / 2;  c1: (-1/7 + 9/8) / 2;  c2: (4/7 - 4/8) / 2;  c3: unused;
    #   c4: (-9/7 + 1/8 + 1/1) / 3  < 0
    signed = [(1 / 7 + 4 / 8) / 2, (-1 / 7 + 9 / 8) / 2, (4 / 7 - 4 / 8) / 2, 0.0,
              (-9 / 7 + 1 / 8 + 1) / 3]
    np.testing.assert_allclose(signed_normlime_scores(m), signed)
    shown = positive_evidence(m)
    np.testing.assert_allclose(shown["normlime"], np.maximum(signed, 0))
    # signed L2: sum of w|w| = 1+4, -1+9, 4-4, 0, -9+1+1
    np.testing.assert_allclose(
        signed_splime_importance(m), [np.sqrt(5), np.sqrt(8), 0, 0, -np.sqrt(7)]
    )
    np.testing.assert_allclose(shown["lime"], [np.sqrt(5), np.sqrt(8), 0, 0, 0])


def test_display_equals_the_paper_scores_where_weights_are_positive():
    rng = np.random.default_rng(3)
    m = np.abs(sparse_matrix(rng, n_rows=30, n_cols=15, k=4))
    shown = positive_evidence(m)
    np.testing.assert_allclose(shown["normlime"], normlime_scores(m), rtol=1e-12)
    np.testing.assert_allclose(shown["lime"], splime_importance(m), rtol=1e-12)
    # and hides everything where they are all negative
    hidden = positive_evidence(-m)
    assert not hidden["normlime"].any() and not hidden["lime"].any()


def test_display_class_maps_partition_by_label():
    rng = np.random.default_rng(4)
    m = sparse_matrix(rng, n_rows=40, n_cols=12, k=5)
    labels = rng.integers(0, 3, size=40)
    maps = display_class_maps(m, labels, 3)
    for y in range(3):
        rows = m[labels == y]
        np.testing.assert_allclose(maps["normlime"][y], positive_evidence(rows)["normlime"])
        np.testing.assert_allclose(maps["lime"][y], positive_evidence(rows)["lime"])
        np.testing.assert_allclose(maps["normlime_raw"][y], normlime_scores(rows))
        np.testing.assert_allclose(maps["lime_raw"][y], splime_importance(rows))
    assert (maps["normlime"] <= maps["normlime_raw"] + 1e-15).all()
    assert (maps["lime"] <= maps["lime_raw"] + 1e-15).all()
    assert (maps["normlime"] == 0).any() and (maps["normlime"] > 0).any()


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="2-D"):
        normlime_scores(np.zeros(5))
    with pytest.raises(ValueError, match="non-finite"):
        normlime_scores(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="labels must have shape"):
        class_normlime(np.zeros((3, 2)), [0, 1], 2)
    with pytest.raises(ValueError, match="labels must lie"):
        class_normlime(np.zeros((2, 2)), [0, 5], 2)


def test_class_maps_have_one_row_per_class_of_the_labels_not_ten():
    from explainers.normlime import class_usage_counts, display_class_maps

    rng = np.random.default_rng(0)
    m = rng.standard_normal((30, 12)) * (rng.random((30, 12)) < 0.3)
    labels = np.arange(30) % 5
    maps = display_class_maps(m, labels)
    assert {k: v.shape for k, v in maps.items()} == {k: (5, 12) for k in maps}
    assert class_usage_counts(m, labels).shape == (5, 12)
    assert display_class_maps(m, labels, n_classes=7)["normlime"].shape == (7, 12)
    np.testing.assert_array_equal(maps["normlime"][4], np.maximum(
        display_class_maps(m[labels == 4], np.zeros(6, int))["normlime"][0], 0))
