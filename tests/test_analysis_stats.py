"""analysis.study.stats against independent numpy computations on fixed, hand-written data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.study.stats import (
    PAIRS,
    friedman_test,
    one_way_anova,
    position_bias,
    proportions,
    tukey_hsd,
    vote_matrix,
    wilcoxon_holm,
)
from analysis.study.votes import METHODS

#: 8 participants x 20 real votes (normlime, lime, smoothgrad, vargrad), written by hand
COUNTS = np.array(
    [
        [12, 5, 2, 1],
        [10, 6, 1, 3],
        [14, 4, 1, 1],
        [9, 7, 3, 1],
        [11, 5, 2, 2],
        [8, 8, 2, 2],
        [13, 3, 2, 2],
        [10, 6, 0, 4],
    ]
)


def fixed_props() -> pd.DataFrame:
    return pd.DataFrame(COUNTS / 20.0, columns=list(METHODS))


def test_vote_matrix_and_proportions_from_long_votes():
    ids = [f"p{i}" for i in range(len(COUNTS))]
    long = pd.DataFrame(
        [
            {"participant_id": pid, "chosen_method": m}
            for pid, row in zip(ids, COUNTS, strict=True)
            for m, c in zip(METHODS, row, strict=True)
            for _ in range(c)
        ]
    ).sample(frac=1.0, random_state=0)
    counts = vote_matrix(long, ids)
    assert counts.to_numpy().tolist() == COUNTS.tolist()
    assert list(counts.columns) == list(METHODS)
    props = proportions(counts)
    np.testing.assert_allclose(props.sum(axis=1), 1.0)
    np.testing.assert_allclose(props.to_numpy(), COUNTS / 20.0)


def test_anova_agrees_with_textbook_numpy():
    x = COUNTS / 20.0
    n, k = x.shape
    grand = x.mean()
    ss_between = n * np.sum((x.mean(axis=0) - grand) ** 2)
    ss_within = np.sum((x - x.mean(axis=0)) ** 2)
    f_value = (ss_between / (k - 1)) / (ss_within / (n * k - k))
    result = one_way_anova([x[:, j] for j in range(k)])
    assert result.df_between == k - 1 == 3
    assert result.df_within == n * k - k == 28
    assert result.ss_between == pytest.approx(ss_between, rel=1e-12)
    assert result.ss_within == pytest.approx(ss_within, rel=1e-12)
    f_stat = result.F
    assert f_stat == pytest.approx(f_value, rel=1e-12)
    assert result.eta_squared == pytest.approx(ss_between / np.sum((x - grand) ** 2), rel=1e-12)
    # p: the F distribution's upper tail, checked against scipy's own one-way ANOVA
    assert result.p == pytest.approx(sps.f_oneway(*x.T).pvalue, rel=1e-10)
    assert grand == pytest.approx(0.25)  # proportions sum to 1: the grand mean is 1/k


def test_anova_agrees_with_statsmodels_ols():
    import statsmodels.api as sm
    from statsmodels.formula.api import ols

    x = COUNTS / 20.0
    long = pd.DataFrame({"p": x.ravel(order="F"), "m": np.repeat(METHODS, len(x))})
    table = sm.stats.anova_lm(ols("p ~ C(m)", data=long).fit(), typ=1)
    result = one_way_anova([x[:, j] for j in range(4)])
    f_stat = result.F
    assert f_stat == pytest.approx(table.loc["C(m)", "F"], rel=1e-10)
    assert result.p == pytest.approx(table.loc["C(m)", "PR(>F)"], rel=1e-8)


def test_tukey_agrees_with_studentized_range_by_hand():
    props = fixed_props()
    x = props.to_numpy()
    n, k = x.shape
    means = dict(zip(METHODS, x.mean(axis=0), strict=True))
    mse = np.sum((x - x.mean(axis=0)) ** 2) / (n * k - k)
    se = np.sqrt(mse / n)  # equal group sizes: sqrt(MSE/2 * (1/n + 1/n))
    q_crit = sps.studentized_range.ppf(0.95, k, n * k - k)
    rows = tukey_hsd(props)
    assert [(r["group1"], r["group2"]) for r in rows] == list(PAIRS)
    for r in rows:
        diff = means[r["group2"]] - means[r["group1"]]
        assert r["meandiff"] == pytest.approx(diff, abs=1e-12)
        assert r["p_adj"] == pytest.approx(
            sps.studentized_range.sf(abs(diff) / se, k, n * k - k), rel=1e-6, abs=1e-12
        )
        assert r["lower"] == pytest.approx(diff - q_crit * se, abs=1e-9)
        assert r["upper"] == pytest.approx(diff + q_crit * se, abs=1e-9)
        assert r["reject"] == (r["lower"] > 0 or r["upper"] < 0)
    # the fixed data were written so that NormLIME clearly beats both gradient methods
    by_pair = {(r["group1"], r["group2"]): r for r in rows}
    assert by_pair[("normlime", "smoothgrad")]["reject"]
    assert by_pair[("normlime", "vargrad")]["meandiff"] < 0


def test_friedman_agrees_with_tie_corrected_formula():
    x = fixed_props().to_numpy()
    n, k = x.shape
    ranks = np.vstack([sps.rankdata(row) for row in x])  # mid-ranks for ties
    rank_sums = ranks.sum(axis=0)
    chi2 = 12.0 / (n * k * (k + 1)) * np.sum(rank_sums**2) - 3.0 * n * (k + 1)
    ties = 0.0
    for row in x:
        _, counts = np.unique(row, return_counts=True)
        ties += np.sum(counts**3 - counts)
    chi2 /= 1.0 - ties / (n * k * (k * k - 1))
    result = friedman_test(fixed_props())
    assert result["statistic"] == pytest.approx(chi2, rel=1e-12)
    assert result["p"] == pytest.approx(sps.chi2.sf(chi2, k - 1), rel=1e-10)
    assert result["kendalls_w"] == pytest.approx(chi2 / (n * (k - 1)), rel=1e-12)
    # NormLIME ranks first in 7 rows and ties with LIME for first (3.5) in one
    assert result["mean_ranks"]["normlime"] == pytest.approx((7 * 4 + 3.5) / 8)


def test_wilcoxon_pairs_orientation_and_holm():
    props = fixed_props()
    rows = wilcoxon_holm(props)
    assert [(r["group1"], r["group2"]) for r in rows] == list(PAIRS)
    for r in rows:
        d = props[r["group2"]].to_numpy() - props[r["group1"]].to_numpy()
        nz = d[d != 0]
        assert r["n_nonzero"] == nz.size
        assert r["median_difference"] == pytest.approx(np.median(d))
        ranks = sps.rankdata(np.abs(nz))
        assert r["statistic"] == pytest.approx(min(ranks[nz > 0].sum(), ranks[nz < 0].sum()))
    m = len(rows)
    order = np.argsort([r["p"] for r in rows])
    running = 0.0
    for i, idx in enumerate(order):  # Holm by hand: step-down, monotone, capped at 1
        running = max(running, min(1.0, (m - i) * rows[idx]["p"]))
        assert rows[idx]["p_holm"] == pytest.approx(running, rel=1e-12)
    lime_normlime = rows[0]
    assert (lime_normlime["group1"], lime_normlime["group2"]) == ("lime", "normlime")
    assert lime_normlime["rank_biserial"] == 1.0  # NormLIME above LIME for every participant


def test_wilcoxon_pair_without_differences_is_reported_as_no_evidence():
    props = pd.DataFrame({"a": [0.5, 0.25, 0.5], "b": [0.5, 0.25, 0.5], "c": [0.0, 0.5, 0.0]})
    rows = {(r["group1"], r["group2"]): r for r in wilcoxon_holm(props)}
    same = rows[("a", "b")]
    assert same["n_nonzero"] == 0
    assert np.isnan(same["p"]) and np.isnan(same["p_holm"]) and same["reject"] is False


def test_position_bias_chi_square_by_hand():
    votes = pd.DataFrame({"position": pd.array([1] * 40 + [2] * 25 + [3] * 20 + [4] * 15)})
    result = position_bias(votes, available=True)
    observed = np.array([40, 25, 20, 15])
    chi2 = np.sum((observed - 25.0) ** 2 / 25.0)
    assert result["counts"] == {"1": 40, "2": 25, "3": 20, "4": 15}
    assert result["chi2"] == pytest.approx(chi2)
    assert result["df"] == 3
    assert result["p"] == pytest.approx(sps.chi2.sf(chi2, 3))
    assert position_bias(votes, available=False)["available"] is False


def test_anova_rejects_degenerate_designs():
    with pytest.raises(ValueError):
        one_way_anova([np.array([1.0, 2.0])])
    with pytest.raises(ValueError):
        one_way_anova([np.array([1.0]), np.array([2.0])])
    flat = one_way_anova([np.array([0.5, 0.5]), np.array([0.5, 0.5])])
    assert np.isnan(flat.F) and np.isnan(flat.p)
