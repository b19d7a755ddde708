"""The primary choice model, the RM-ANOVA and the robustness figures, against independent
computations (statsmodels on the long table, numpy, brute force) and known truths."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from analysis.study import choice, robustness, stats
from analysis.study.attention import select_participants
from analysis.study.pipeline import run_analysis
from analysis.study.simulate import simulate_export
from analysis.study.votes import METHODS, VotesError, as_strings, validate_votes


def real_answers(frame: pd.DataFrame) -> pd.DataFrame:
    table = validate_votes(as_strings(frame)).table
    return table[~table["is_attention_check"]].reset_index(drop=True)


@pytest.fixture(scope="module")
def fixed():
    """A fixed data set: 120 heterogeneous participants, a left-slot preference."""
    frame = simulate_export(
        120, random_state=11, p_inattentive=0, p_incomplete=0, position_logits=(0.4, 0, 0, -0.1)
    )
    real = real_answers(frame)
    return real, choice.choice_data(real, METHODS)


def long_table(real: pd.DataFrame):
    """One row per shown option: chosen (0/1), method and slot dummies, question id."""
    options = np.array([text.split("|") for text in real["options"]])
    n, k = options.shape
    slot = np.tile(np.arange(k), n)
    method = options.ravel()
    chosen = (slot == np.repeat(real["position"].to_numpy(dtype=int) - 1, k)).astype(float)
    others = [m for m in METHODS if m != "lime"]
    exog = np.column_stack(
        [(method == m).astype(float) for m in others]
        + [(slot == s).astype(float) for s in (1, 2, 3)]
    )
    return chosen, exog, np.repeat(np.arange(n), k)


def test_point_estimate_equals_statsmodels_conditional_logit(fixed):
    from statsmodels.discrete.conditional_models import ConditionalLogit

    real, data = fixed
    y, exog, groups = long_table(real)
    reference = ConditionalLogit(y, exog, groups=groups).fit(
        method="newton", tol=1e-12, maxiter=100, disp=0
    )
    model = choice.fit_choice_model(data, draws=0)
    ours = [model.coef[m] for m in ("normlime", "smoothgrad", "vargrad")]
    ours += [model.position_coef[s] for s in ("2", "3", "4")]
    np.testing.assert_allclose(ours, reference.params, atol=1e-7)
    main = data.collapse_digits()
    x, _ = choice.design_matrix(main.shown, METHODS.index("lime"))
    fit = choice.fit_types(x, main.chosen, main.counts.sum(axis=0)[None])
    assert fit.loglik[0] == pytest.approx(reference.llf, rel=1e-10)


def test_robust_covariance_equals_an_independent_sandwich(fixed):
    real, data = fixed
    model = choice.fit_choice_model(data, draws=0)
    theta = np.array(
        [model.coef[m] for m in ("normlime", "smoothgrad", "vargrad")]
        + [model.position_coef[s] for s in ("2", "3", "4")]
    )
    y, exog, _ = long_table(real)
    x = exog.reshape(len(real), 4, -1)
    util = x @ theta
    prob = np.exp(util - util.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    chosen = y.reshape(len(real), 4).argmax(axis=1)
    score = x[np.arange(len(real)), chosen] - np.einsum("qs,qsp->qp", prob, x)
    hessian = np.einsum("qs,qsp,qsr->pr", prob, x, x) - np.einsum(
        "qp,qr->pr", *(np.einsum("qs,qsp->qp", prob, x),) * 2
    )
    clusters = pd.factorize(real["participant_id"])[0]
    per = np.zeros((clusters.max() + 1, len(theta)))
    np.add.at(per, clusters, score)
    n = per.shape[0]
    bread = np.linalg.inv(hessian)
    expected = bread @ per.T @ per @ bread * n / (n - 1)
    se = [model.se_robust[m] for m in ("normlime", "smoothgrad", "vargrad")]
    np.testing.assert_allclose(se, np.sqrt(np.diag(expected))[:3], rtol=1e-8)


def test_known_method_and_position_effects_are_recovered():
    beta = {"normlime": 0.9, "lime": 0.0, "smoothgrad": -0.7, "vargrad": -0.4}
    gamma = (0.0, -0.3, -0.5, 0.2)
    prefs = np.exp([beta[m] for m in METHODS])
    frame = simulate_export(
        400,
        preferences=tuple(prefs / prefs.sum()),
        concentration=None,
        position_logits=gamma,
        p_inattentive=0,
        p_incomplete=0,
        random_state=5,
    )
    model = choice.fit_choice_model(choice.choice_data(real_answers(frame), METHODS), seed=3)
    for m in METHODS:
        lo, hi = model.ci[m]
        assert lo <= beta[m] <= hi, (m, model.ci[m])
    for slot in ("2", "3", "4"):
        lo, hi = model.position_ci[slot]
        assert lo <= gamma[int(slot) - 1] <= hi, (slot, model.position_ci[slot])
    # and a wrong truth is excluded: the intervals are informative, not just wide
    assert model.ci["normlime"][0] > 0.5 and model.position_ci["4"][0] > -0.1


def test_bootstrap_depends_only_on_its_seed(fixed):
    _, data = fixed
    a = choice.fit_choice_model(data, draws=200, seed=7)
    b = choice.fit_choice_model(data, draws=200, seed=7)
    c = choice.fit_choice_model(data, draws=200, seed=8)
    assert a.ci == b.ci and a.ci != c.ci
    assert a.bootstrap == {
        "n": 200,
        "seed": 7,
        "level": 0.95,
        "failed": 0,
        "method": "percentile, participants resampled with replacement",
    }
    main = data.collapse_digits()
    chunked = np.vstack(list(choice.bootstrap_counts(main.counts, 50, 1, chunk=7)))
    whole = np.vstack(list(choice.bootstrap_counts(main.counts, 50, 1, chunk=50)))
    np.testing.assert_array_equal(chunked, whole)
    assert chunked.sum(axis=1).tolist() == [main.counts.sum()] * 50 or chunked.std() > 0


def test_leave_one_out_range_matches_explicit_refits(fixed):
    real, data = fixed
    model = choice.fit_choice_model(data, draws=0)
    estimates = []
    for pid in data.participants[:15]:
        rest = real[real["participant_id"] != pid]
        refit = choice.fit_choice_model(choice.choice_data(rest, METHODS), draws=0)
        estimates.append(refit.coef["normlime"])
    lo, hi = model.leave_one_out["normlime"]
    assert lo - 1e-9 <= min(estimates) and max(estimates) <= hi + 1e-9


def test_marginal_cross_check_equals_nominal_gee_and_a_cluster_bootstrap(fixed):
    from statsmodels.genmod.cov_struct import Independence
    from statsmodels.genmod.generalized_estimating_equations import NominalGEE

    real, _ = fixed
    marginal = choice.marginal_cross_check(real, METHODS, "lime")
    order = ["normlime", "smoothgrad", "vargrad", "lime"]
    codes = pd.Categorical(real["chosen_method"], categories=order).codes
    pid = pd.factorize(real["participant_id"])[0]
    gee = NominalGEE(codes, np.ones((len(codes), 1)), groups=pid, cov_struct=Independence()).fit()
    np.testing.assert_allclose([marginal["coef"][m] for m in order[:3]], gee.params, atol=1e-5)
    # the intervals: against a cluster bootstrap of the same estimator
    counts = pd.crosstab(pid, real["chosen_method"])[order].to_numpy()
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(2000):
        total = counts[rng.integers(0, len(counts), len(counts))].sum(axis=0)
        draws.append(np.log(total[:3] / total[3]))
    boot_se = np.std(draws, axis=0)
    half = [(marginal["ci"][m][1] - marginal["ci"][m][0]) / 2 / 1.959964 for m in order[:3]]
    np.testing.assert_allclose(half, boot_se, rtol=0.1)


def test_separation_is_reported_not_hidden():
    frame = simulate_export(
        10,
        preferences=(1, 1, 1e-12, 1),
        concentration=None,
        p_inattentive=0,
        p_incomplete=0,
        random_state=0,
    )
    real = real_answers(frame)
    assert "smoothgrad" not in set(real["chosen_method"])
    with pytest.raises(ValueError, match="no finite estimate"):
        choice.fit_choice_model(choice.choice_data(real, METHODS), draws=0)
    analysis = run_analysis(frame, bootstrap=10)  # a DataFrame with missing values, as is
    assert analysis.choice_model is None and "no finite estimate" in analysis.choice_note


def test_rm_anova_is_three_quarters_of_the_one_way_f_and_matches_numpy():
    rng = np.random.default_rng(2)
    counts = rng.multinomial(20, [0.5, 0.3, 0.1, 0.1], size=40)
    props = pd.DataFrame(counts / 20, columns=list(METHODS))
    rm = stats.repeated_measures_anova(props)
    one = stats.one_way_anova([props[m].to_numpy() for m in METHODS])
    assert rm["F"] == pytest.approx(0.75 * one.F, rel=1e-12)
    assert rm["ratio_to_one_way"] == pytest.approx(0.75, rel=1e-12)
    assert (rm["df_effect"], rm["df_error"]) == (3, 3 * 39)

    # independent: two-way decomposition without interaction, on data that do NOT sum to 1
    y = props.to_numpy() + rng.normal(0, 0.05, size=props.shape)
    n, k = y.shape
    grand = y.mean()
    ss_m = n * np.sum((y.mean(axis=0) - grand) ** 2)
    ss_s = k * np.sum((y.mean(axis=1) - grand) ** 2)
    ss_e = np.sum((y - grand) ** 2) - ss_m - ss_s
    f = (ss_m / (k - 1)) / (ss_e / ((k - 1) * (n - 1)))
    free = stats.repeated_measures_anova(pd.DataFrame(y, columns=list(METHODS)))
    assert free["F"] == pytest.approx(f, rel=1e-10)
    from statsmodels.stats.anova import AnovaRM

    long = pd.DataFrame(
        {"pid": np.repeat(np.arange(n), k), "method": np.tile(list(METHODS), n), "y": y.ravel()}
    )
    table = AnovaRM(long, "y", "pid", within=["method"]).fit().anova_table
    assert free["F"] == pytest.approx(float(table["F Value"].iloc[0]), rel=1e-9)
    assert free["p"] == pytest.approx(float(table["Pr > F"].iloc[0]), rel=1e-7)
    assert free["ss_subjects"] == pytest.approx(ss_s, rel=1e-10)
    assert 1 / (k - 1) <= free["greenhouse_geisser_epsilon"] <= 1


def brute_force_participants(values: np.ndarray, a: int, b: int) -> int | None:
    """Smallest set of participants whose rewritten votes put b strictly above a."""
    n = len(values)
    for size in range(n + 1):
        for chosen in combinations(range(n), size):
            new = values.copy()
            for i in chosen:
                new[i] = 0
                new[i, b] = values[i].sum()
            if new[:, b].sum() > new[:, a].sum():
                return size
    return None


def test_reversal_counts_match_brute_force():
    rng = np.random.default_rng(4)
    for _ in range(20):
        values = rng.multinomial(6, [0.5, 0.3, 0.1, 0.1], size=5)
        counts = pd.DataFrame(values, columns=list(METHODS))
        for row in robustness.reversal_counts(counts):
            a, b = METHODS.index(row["ahead"]), METHODS.index(row["behind"])
            assert row["participants"] == brute_force_participants(values, a, b)
            gap = values[:, a].sum() - values[:, b].sum()
            assert row["gap"] == gap and row["votes"] == gap // 2 + 1
        top = robustness.top_rank_reversal(counts)
        leader = METHODS.index(top["leader"])
        assert values[:, leader].sum() == values.sum(axis=0).max()
        assert top["participants"] == min(
            brute_force_participants(values, leader, b) for b in range(4) if b != leader
        )


def test_speeder_rule_is_off_by_default_and_excludes_when_declared():
    frame = simulate_export(30, random_state=1, p_inattentive=0, p_incomplete=0)
    fast = frame["participant_id"].isin(["p00001", "p00002"])
    frame.loc[fast, "response_ms"] = 300
    votes = validate_votes(as_strings(frame))
    assert select_participants(votes).kept == 30 - select_participants(votes).excluded
    default = select_participants(votes)
    declared = select_participants(votes, speeder_ms=700)
    assert "speeder" not in set(default.participants["reason"])
    speeders = declared.participants.index[declared.participants["reason"] == "speeder"]
    assert set(speeders) == {"p00001", "p00002"}
    assert "median response time 300 ms" in declared.participants.loc["p00001", "detail"]
    with pytest.raises(VotesError, match="needs a response_ms column"):
        select_participants(
            validate_votes(as_strings(frame.drop(columns="response_ms"))), speeder_ms=700
        )


def test_digit_interaction_is_found_when_present_and_seeded():
    frame = simulate_export(100, random_state=9, p_inattentive=0, p_incomplete=0)
    coin = np.random.default_rng(0).random(len(frame)) < 0.5
    real_rows = (~frame["is_attention_check"]) & frame["digit"].isin([0, 1, 2]) & coin
    # on digits 0-2, half the answers go to SmoothGrad instead: a strong digit-by-method effect
    slot = frame.loc[real_rows, "options"].map(lambda o: o.split("|").index("smoothgrad") + 1)
    frame.loc[real_rows, "position"] = slot
    frame.loc[real_rows, "chosen_method"] = "smoothgrad"
    real = real_answers(frame)
    found = robustness.interaction_test(real, METHODS, "lime", permutations=49, seed=1)
    assert found["tested"] and found["p"] == pytest.approx(1 / 50)
    again = robustness.interaction_test(real, METHODS, "lime", permutations=49, seed=1)
    assert again == found

    null = real_answers(simulate_export(100, random_state=9, p_inattentive=0, p_incomplete=0))
    result = robustness.interaction_test(null, METHODS, "lime", permutations=49, seed=1)
    assert result["tested"] and result["p"] > 0.05
