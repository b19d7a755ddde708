"""The statistics of the human study, on plain pandas/numpy data.

Unit of observation (as in the paper): one participant's *proportion* of real-question
votes given to each method, so every kept participant contributes one row of k
proportions that sum to 1 (the paper: four methods; any k >= 2 works).

* the paper's analysis: one-way ANOVA with the k methods as groups and those
  proportions as observations, then Tukey HSD over the k(k - 1)/2 pairs (statsmodels);
* beyond the paper: the k proportions of one participant are dependent (they sum to
  1), which the one-way ANOVA ignores, so the repeated-measures alternatives are reported
  too: Friedman's test over participants (blocks) and pairwise Wilcoxon signed-rank tests
  with Holm's correction; plus a chi-square test of screen-slot (position) bias.

Distributions and p-values come from scipy/statsmodels; this module only arranges data
and computes sums of squares (two-pass, shifted, so the NIST StRD datasets pass).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from .votes import METHODS, N_SLOTS

__all__ = [
    "PAIRS",
    "AnovaResult",
    "descriptives",
    "friedman_test",
    "one_way_anova",
    "position_bias",
    "proportions",
    "repeated_measures_anova",
    "tukey_hsd",
    "vote_matrix",
    "wilcoxon_holm",
]

#: the paper's six method pairs in statsmodels' order (groups sorted by name; diff = g2 - g1)
PAIRS: tuple[tuple[str, str], ...] = tuple(combinations(sorted(METHODS), 2))


def vote_matrix(
    votes: pd.DataFrame, participants: Sequence[str], methods: Sequence[str] = METHODS
) -> pd.DataFrame:
    """Votes per participant (rows, in ``participants`` order) and method (columns, in
    ``methods`` order)."""
    k = len(methods)
    codes = pd.Categorical(votes["chosen_method"], categories=list(methods)).codes
    rows = pd.Index(participants).get_indexer(votes["participant_id"])
    if (codes < 0).any() or (rows < 0).any():
        raise ValueError("votes contain a method or participant outside the analysis")
    flat = np.bincount(rows * k + codes, minlength=len(participants) * k)
    return pd.DataFrame(
        flat.reshape(len(participants), k),
        index=pd.Index(participants, name="participant_id"),
        columns=list(methods),
    )


def proportions(counts: pd.DataFrame) -> pd.DataFrame:
    """Each participant's share of their own real-question votes per method."""
    totals = counts.sum(axis=1).to_numpy()
    if (totals == 0).any():
        raise ValueError("a participant without votes has no proportions")
    return counts.div(totals, axis=0)


def descriptives(props: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD, SEM and a 95% t confidence interval of each method's proportion."""
    from scipy import stats

    n = len(props)
    mean = props.mean(axis=0)
    sd = props.std(axis=0, ddof=1) if n > 1 else props.mean(axis=0) * np.nan
    sem = sd / np.sqrt(n)
    half = stats.t.ppf(0.975, n - 1) * sem if n > 1 else sem
    return pd.DataFrame(
        {"mean": mean, "sd": sd, "sem": sem, "ci_low": mean - half, "ci_high": mean + half}
    )


@dataclass
class AnovaResult:
    """One-way ANOVA table: F, p, both degrees of freedom, sums of squares, eta squared."""

    F: float
    p: float
    df_between: int
    df_within: int
    ss_between: float
    ss_within: float
    eta_squared: float

    def as_dict(self) -> dict:
        return asdict(self)


def one_way_anova(samples: Sequence[np.ndarray]) -> AnovaResult:
    """Fixed-effects one-way ANOVA of ``samples`` (one 1-D array per group).

    Sums of squares use the two-pass formulas on data shifted by their first value, so
    leading digits shared by all observations (NIST SmLs04-09, SiRstv, AtmWtAg) cancel
    exactly before any squaring; p is the F distribution's survival function (scipy).
    """
    from scipy import stats

    groups = [np.asarray(s, dtype=np.float64).ravel() for s in samples]
    if len(groups) < 2:
        raise ValueError("one-way ANOVA needs at least two groups")
    sizes = np.array([g.size for g in groups])
    if (sizes == 0).any():
        raise ValueError("one-way ANOVA: every group needs at least one observation")
    n_total, k = int(sizes.sum()), len(groups)
    if n_total - k < 1:
        raise ValueError("one-way ANOVA needs more observations than groups")
    shift = groups[0][0]
    centred = [g - shift for g in groups]
    means = np.array([c.mean() for c in centred])
    grand = float(np.sum(sizes * means) / n_total)
    ss_between = float(np.sum(sizes * (means - grand) ** 2))
    ss_within = float(sum(np.sum((c - m) ** 2) for c, m in zip(centred, means, strict=True)))
    df_between, df_within = k - 1, n_total - k
    with np.errstate(divide="ignore", invalid="ignore"):
        # numpy division: x/0 -> inf and 0/0 -> nan, reported as "undefined" upstream
        f_value = float(np.float64(ss_between / df_between) / np.float64(ss_within / df_within))
        total = ss_between + ss_within
        eta = ss_between / total if total > 0 else float("nan")
    p = float(stats.f.sf(f_value, df_between, df_within)) if np.isfinite(f_value) else np.nan
    return AnovaResult(float(f_value), p, df_between, df_within, ss_between, ss_within, eta)


def repeated_measures_anova(props: pd.DataFrame) -> dict:
    """One-way repeated-measures ANOVA: participants as subjects, methods as the within
    factor, with the Greenhouse-Geisser correction.

    The same F as statsmodels' ``AnovaRM`` (a test checks it), computed from the sums of
    squares because AnovaRM fits a regression with one dummy per participant: 19 s at
    3,000 participants and gigabytes at 10,000.

    A participant's proportions sum to 1, so every subject mean is 1/k and the subject
    sum of squares is 0: the residual of the one-way ANOVA is the RM residual, with
    (n - 1)(k - 1) instead of k(n - 1) degrees of freedom.  Hence F_RM = F_one-way *
    (k - 1) / k exactly (3/4 for four methods), reported as ``ratio_to_one_way``.
    """
    from scipy import stats

    values = props.to_numpy(dtype=np.float64)
    n, k = values.shape
    centred = values - values[0, 0]  # shifted, as one_way_anova, for exact cancellation
    grand = centred.mean()
    ss_methods = float(n * np.sum((centred.mean(axis=0) - grand) ** 2))
    ss_subjects = float(k * np.sum((centred.mean(axis=1) - grand) ** 2))
    residual = centred - centred.mean(axis=0) - centred.mean(axis=1, keepdims=True) + grand
    ss_error = float(np.sum(residual**2))
    df1, df2 = k - 1, (k - 1) * (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f_value = float(np.float64(ss_methods / df1) / np.float64(ss_error / df2))
    p = float(stats.f.sf(f_value, df1, df2)) if np.isfinite(f_value) else float("nan")
    # Greenhouse-Geisser epsilon from the covariance of orthonormal within contrasts
    contrasts = np.linalg.qr(np.eye(k) - 1.0 / k)[0][:, : k - 1]
    cov = np.atleast_2d(np.cov(values @ contrasts, rowvar=False))
    trace = float(np.trace(cov))
    epsilon = trace**2 / ((k - 1) * float(np.trace(cov @ cov))) if trace > 0 else float("nan")
    p_gg = (
        float(stats.f.sf(f_value, epsilon * df1, epsilon * df2))
        if np.isfinite(f_value) and np.isfinite(epsilon)
        else float("nan")
    )
    one_way = one_way_anova([values[:, j] for j in range(k)])
    return {
        "test": "one-way repeated-measures ANOVA (participants as subjects)",
        "F": f_value,
        "df_effect": df1,
        "df_error": df2,
        "p": p,
        "ss_methods": ss_methods,
        "ss_subjects": ss_subjects,
        "ss_error": ss_error,
        "greenhouse_geisser_epsilon": epsilon,
        "p_greenhouse_geisser": p_gg,
        "ratio_to_one_way": f_value / one_way.F if one_way.F else float("nan"),
    }


def tukey_hsd(props: pd.DataFrame, alpha: float = 0.05) -> list[dict]:
    """Tukey HSD over every pair of columns (statsmodels ``pairwise_tukeyhsd``).

    Each column is one group (for the study: the methods' proportions; two or more).  Rows follow
    statsmodels: group1 < group2 by name, meandiff = mean(group2) - mean(group1),
    lower/upper the simultaneous (1 - alpha) confidence interval, p_adj from the
    studentized range distribution.
    """
    from statsmodels.stats.multicomp import pairwise_tukeyhsd

    names = [str(c) for c in props.columns]
    n = len(props)
    endog = props.to_numpy(dtype=np.float64).ravel(order="F")
    labels = np.repeat(np.array(names), n)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        result = pairwise_tukeyhsd(endog, labels, alpha=alpha)
    pairs = list(combinations([str(g) for g in result.groupsunique], 2))
    if pairs != list(combinations(sorted(names), 2)):  # fail loudly, never mislabel a row
        raise RuntimeError(f"unexpected Tukey pair order from statsmodels: {pairs}")
    rows = []
    for i, (g1, g2) in enumerate(pairs):
        rows.append(
            {
                "group1": g1,
                "group2": g2,
                "meandiff": float(result.meandiffs[i]),
                "p_adj": float(result.pvalues[i]),
                "lower": float(result.confint[i, 0]),
                "upper": float(result.confint[i, 1]),
                "reject": bool(result.reject[i]),
            }
        )
    return rows


def friedman_test(props: pd.DataFrame) -> dict:
    """Friedman's test: rows (participants) are blocks, columns (methods) the treatments.

    Ties within a block get mid-ranks and scipy applies the tie correction, as R's
    friedman.test does.  With two methods scipy runs no test (statistic and p are NaN,
    ``note`` says why).  Kendall's W = chi2 / (n (k - 1)) is reported as the effect size
    (0 = no agreement between participants on a ranking of the methods, 1 = complete).
    """
    from scipy import stats

    n, k = props.shape
    names = [str(c) for c in props.columns]
    columns = [props[c].to_numpy() for c in props.columns]
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            result = stats.friedmanchisquare(*columns)
            statistic, p = float(result.statistic), float(result.pvalue)
        except ValueError:  # e.g. fewer than 2 blocks: no test
            statistic, p = float("nan"), float("nan")
    kendall_w = statistic / (n * (k - 1)) if np.isfinite(statistic) and n > 0 else float("nan")
    mean_ranks = stats.rankdata(props.to_numpy(), axis=1).mean(axis=0)
    result = {
        "statistic": statistic,
        "df": k - 1,
        "p": p,
        "n": int(n),
        "kendalls_w": kendall_w,
        "mean_ranks": {name: float(r) for name, r in zip(names, mean_ranks, strict=True)},
    }
    if k < 3:  # scipy refuses two treatments; the paired Wilcoxon test is that comparison
        result["note"] = "Friedman's test needs three or more methods"
    return result


def wilcoxon_holm(
    props: pd.DataFrame, alpha: float = 0.05, pairs: Sequence[tuple[str, str]] | None = None
) -> list[dict]:
    """Pairwise Wilcoxon signed-rank tests (two-sided) with Holm's correction.

    ``pairs`` defaults to every pair of columns in sorted order (for the study: the
    pairs of :func:`tukey_hsd`, same orientation: difference = group2 - group1).
    Zero differences are dropped (``zero_method='wilcox'``, as R's wilcox.test); scipy
    picks the exact null distribution for small samples without ties, else the normal
    approximation with tie correction.  ``rank_biserial`` = (W+ - W-) / (W+ + W-), the
    matched-pairs effect size, positive when group2 tends to be larger.
    """
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    if pairs is None:
        pairs = list(combinations(sorted(str(c) for c in props.columns), 2))
    rows = []
    for g1, g2 in pairs:
        diff = props[g2].to_numpy() - props[g1].to_numpy()
        nonzero = diff[diff != 0]
        row = {
            "group1": g1,
            "group2": g2,
            "n_nonzero": int(nonzero.size),
            "median_difference": float(np.median(diff)) if diff.size else float("nan"),
            "statistic": float("nan"),
            "p": float("nan"),
            "rank_biserial": float("nan"),
        }
        if nonzero.size:
            ranks = stats.rankdata(np.abs(nonzero))
            w_plus, w_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
            row["rank_biserial"] = float((w_plus - w_minus) / (w_plus + w_minus))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                result = stats.wilcoxon(nonzero, zero_method="wilcox")
            row["statistic"], row["p"] = float(result.statistic), float(result.pvalue)
        rows.append(row)
    # a pair without any non-zero difference carries no evidence: p = 1 in the family
    raw = np.array([r["p"] if np.isfinite(r["p"]) else 1.0 for r in rows])
    reject, adjusted, _, _ = multipletests(raw, alpha=alpha, method="holm")
    for row, p_holm, rej in zip(rows, adjusted, reject, strict=True):
        row["p_holm"] = float(p_holm) if np.isfinite(row["p"]) else float("nan")
        row["reject"] = bool(rej) and bool(np.isfinite(row["p"]))
    return rows


def position_bias(votes: pd.DataFrame, available: bool, n_slots: int = N_SLOTS) -> dict:
    """Chi-square goodness of fit of the chosen screen slot against uniform.

    The study randomises which slot shows which method, so without a position preference
    the chosen slot is uniform over the ``n_slots`` slots (one per method) whatever the
    method preferences are.
    """
    from scipy import stats

    if not available:
        return {
            "available": False,
            "reason": "the export has no position column (screen slot of the chosen option)",
        }
    slots = votes["position"].dropna().to_numpy(dtype=np.int64)
    if slots.size == 0:
        return {"available": False, "reason": "no kept real answer has a position"}
    counts = np.bincount(slots - 1, minlength=n_slots)
    result = stats.chisquare(counts)
    expected = slots.size / n_slots
    return {
        "available": True,
        "slots": f"1-{n_slots}, left to right",
        "n_answers": int(slots.size),
        "counts": {str(s): int(c) for s, c in enumerate(counts, start=1)},
        "expected_per_slot": float(expected),
        "chi2": float(result.statistic),
        "df": n_slots - 1,
        "p": float(result.pvalue),
        "small_expected_counts": bool(expected < 5),
    }
