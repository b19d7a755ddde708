"""From a responses table to every number of the report (no files written here).

``run_design_analysis`` = restrict to one study and the live mode -> validate
(responses.py) -> filter participants (complete surveys, attention checks) -> the test
answers -> the primary analysis, a logistic mixed model of ``correct`` on the condition with
crossed random intercepts for participant and item (glmm.py), Wald intervals (the primary;
docs/designs-analysis.md gives their measured coverage) and, on request, a cluster
bootstrap over participants -> each condition's accuracy against chance -> for agreement,
the same model on the model's right and wrong predictions separately and the mean
confidence on each (does an explanation raise confidence in wrong predictions too?).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..words import count
from . import glmm
from .responses import (
    Responses,
    ResponseSelection,
    ResponsesError,
    restrict_modes,
    select_responses,
    validate_responses,
)

__all__ = [
    "ConditionModel",
    "DesignAnalysis",
    "LEVEL",
    "MIN_PER_CONDITION",
    "accuracy_by_condition",
    "design_matrix",
    "fit_condition_model",
    "run_design_analysis",
]

#: confidence level of every interval
LEVEL = 0.95
#: below this many kept participants in a condition the report warns: the Wald intervals'
#: coverage was measured from 10 per condition up (93-96% for 95% intervals,
#: docs/designs-analysis.md, "Intervals and their coverage"), not below
MIN_PER_CONDITION = 10
#: what a correct answer is, per task (for sentences)
TARGET = {
    "forward": "predicted the model's answer",
    "distinction": "picked the prediction the model actually made",
    "agreement": "judged correctly whether the model was right",
}


@dataclass
class ConditionModel:
    """The mixed model on one set of answers; estimates are log-odds ratios against the
    baseline (treatment coding).  ``note`` says why a model is missing (``fit`` None or
    not converged)."""

    subset: str
    baseline: str
    conditions: tuple[str, ...]
    n_participants: int
    n_items: int
    n_answers: int
    accuracy: dict[str, float]
    fit: glmm.GlmmFit | None = None
    note: str = ""
    level: float = LEVEL
    coef: dict[str, float] = field(default_factory=dict)
    se: dict[str, float] = field(default_factory=dict)
    ci: dict[str, list[float]] = field(default_factory=dict)
    p: dict[str, float] = field(default_factory=dict)
    p_holm: dict[str, float] = field(default_factory=dict)
    typical: dict[str, dict] = field(default_factory=dict)
    joint: dict | None = None
    bootstrap: dict | None = None

    @property
    def others(self) -> tuple[str, ...]:
        return tuple(c for c in self.conditions if c != self.baseline)

    @property
    def fitted(self) -> bool:
        return self.fit is not None and self.fit.converged and bool(self.coef)

    def as_summary(self) -> dict:
        fit = self.fit
        out = {
            "subset": self.subset,
            "baseline": self.baseline,
            "coef": self.coef,
            "ci": self.ci,
            "accuracy": self.accuracy,
            "n_participants": self.n_participants,
            "n_items": self.n_items,
            "n_answers": self.n_answers,
            "se": self.se,
            "odds_ratio": {c: float(np.exp(v)) for c, v in self.coef.items()},
            "odds_ratio_ci": {c: [float(np.exp(v)) for v in ci] for c, ci in self.ci.items()},
            "p": self.p,
            "p_holm": self.p_holm,
            "joint": self.joint,
            "typical_accuracy": self.typical,
            "interval": {
                "method": "wald",
                "level": self.level,
                "covariance": "inverse Hessian of the Laplace log-likelihood over the "
                "variance components and fixed effects (lme4's glmer default)",
            },
            "bootstrap": self.bootstrap,
            "note": self.note or None,
        }
        if fit is not None:
            out |= {
                "intercept": float(fit.beta[0]),
                "random_effect_sd": {"participant": fit.sd[0], "item": fit.sd[1]},
                "random_effect_sd_at_zero": {
                    "participant": fit.boundary[0],
                    "item": fit.boundary[1],
                },  # fmt: skip
                "log_likelihood": fit.loglik,
                "converged": fit.converged,
                "max_gradient": fit.gradient_max,
                "fit_message": fit.message or None,
                "model": "glmer(correct ~ condition + (1 | participant) + (1 | item), "
                "family = binomial), Laplace approximation (nAGQ = 1), maximum likelihood",
            }
        return out


@dataclass
class DesignAnalysis:
    """All results of one analysis of a responses export (``report.py`` writes them)."""

    responses: Responses
    selection: ResponseSelection
    model: ConditionModel
    accuracy: list[dict]
    alpha: float
    warnings: list[str] = field(default_factory=list)
    #: agreement only: the model on the model's right / wrong predictions, the mean
    #: confidence per condition on each, and each condition's difference from the baseline
    by_model_correct: dict[str, ConditionModel] = field(default_factory=dict)
    confidence: list[dict] = field(default_factory=list)
    confidence_vs_baseline: list[dict] = field(default_factory=list)

    @property
    def task(self) -> str:
        return self.responses.task

    @property
    def conditions(self) -> tuple[str, ...]:
        return self.responses.conditions

    @property
    def baseline(self) -> str:
        return self.responses.baseline


def run_design_analysis(
    raw: pd.DataFrame,
    *,
    source: str = "responses",
    baseline: str | None = None,
    chance: float | None = None,
    min_checks: int | None = None,
    include_incomplete: bool = False,
    speeder_ms: int | None = None,
    alpha: float = 0.05,
    study: str | None = None,
    mode: str | None = None,
    bootstrap: int = 0,
    seed: int = 0,
) -> DesignAnalysis:
    """Validate, filter and analyse a responses table; raise ResponsesError on unusable
    input.  ``mode`` None analyses the live rows (debug and sandbox rows are left out with
    a warning); ``bootstrap`` > 0 adds a participant cluster bootstrap (seeded)."""
    if not 0 < alpha < 1:
        raise ResponsesError(f"--alpha must be between 0 and 1, got {alpha}")
    if bootstrap < 0:
        raise ResponsesError(f"--bootstrap must be 0 or more, got {bootstrap}")
    raw, warnings = restrict_modes(raw, study, mode)
    responses = validate_responses(raw, source=source, baseline=baseline, chance=chance)
    warnings += responses.warnings
    selection = select_responses(responses, min_checks, include_incomplete, speeder_ms)
    _check_enough(selection, responses)
    test = selection.test
    conditions, base = responses.conditions, responses.baseline
    model = fit_condition_model(
        test, conditions, base, subset="all test answers", bootstrap=bootstrap, seed=seed
    )
    warnings += _model_warnings(model, selection, conditions, alpha)
    analysis = DesignAnalysis(
        responses=responses,
        selection=selection,
        model=model,
        accuracy=accuracy_by_condition(test, conditions, responses.chance),
        alpha=alpha,
        warnings=warnings,
    )
    if responses.task == "agreement":
        for key, value, label in (("model_right", 1, "the model's right predictions"),
                                  ("model_wrong", 0, "the model's wrong predictions")):  # fmt: skip
            part = test[(test["model_correct"] == value).to_numpy(dtype=bool, na_value=False)]
            analysis.by_model_correct[key] = fit_condition_model(
                part, conditions, base, subset=label
            )
        analysis.confidence, analysis.confidence_vs_baseline = confidence_tables(
            test, conditions, base
        )
    return analysis


def design_matrix(condition: np.ndarray, conditions, baseline) -> tuple[np.ndarray, list[str]]:
    """Intercept plus one 0/1 column per non-baseline condition (treatment coding)."""
    others = [c for c in conditions if c != baseline]
    X = np.column_stack([np.ones(len(condition))] + [condition == c for c in others])
    return X.astype(float), ["(Intercept)", *others]


def fit_condition_model(
    test: pd.DataFrame,
    conditions,
    baseline: str,
    *,
    subset: str = "all test answers",
    bootstrap: int = 0,
    seed: int = 0,
    level: float = LEVEL,
) -> ConditionModel:
    """The primary model on ``test`` (columns participant, item, condition, correct)."""
    conditions = tuple(conditions)
    participant_codes, participant = np.unique(test["participant"].to_numpy(), return_inverse=True)
    _, item = np.unique(test["item"].to_numpy(), return_inverse=True)
    condition = test["condition"].to_numpy()
    y = test["correct"].to_numpy(dtype=float)
    accuracy = {
        c: float(y[condition == c].mean()) if (condition == c).any() else float("nan")
        for c in conditions
    }
    model = ConditionModel(
        subset=subset,
        baseline=baseline,
        conditions=conditions,
        n_participants=len(participant_codes),
        n_items=int(item.max()) + 1 if len(item) else 0,
        n_answers=len(y),
        accuracy=accuracy,
        level=level,
    )
    empty = [c for c in conditions if not (condition == c).any()]
    if empty:
        model.note = f"no answers in condition(s) {', '.join(empty)}"
        return model
    if model.n_items < 2:
        model.note = "fewer than two items: no item variance to estimate"
        return model
    X, names = design_matrix(condition, conditions, baseline)
    fit = glmm.fit_glmm(y, X, participant.ravel(), item.ravel(), names=names)
    model.fit = fit
    if not fit.converged:
        model.note = fit.message
        return model
    if fit.message:
        model.note = fit.message
    z = stats.norm.isf((1 - level) / 2)
    others = names[1:]
    se = fit.se
    for k, c in enumerate(others, start=1):
        b, s = float(fit.beta[k]), float(se[k])
        model.coef[c], model.se[c] = b, s
        model.ci[c] = [float(b - z * s), float(b + z * s)]
        model.p[c] = float(2 * stats.norm.sf(abs(b / s))) if s > 0 else float("nan")
    model.p_holm = holm(model.p)
    model.joint = joint_wald(fit.beta[1:], fit.cov[1:, 1:])
    model.typical = _typical(fit, names, baseline, z)
    if bootstrap:
        model.bootstrap = cluster_bootstrap(
            y, X, participant.ravel(), item.ravel(), condition, fit, others,
            draws=bootstrap, seed=seed, level=level,
        )  # fmt: skip
    return model


def holm(p: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment of the per-condition p-values."""
    keys = [k for k in p if np.isfinite(p[k])]
    order = sorted(keys, key=lambda k: p[k])
    m, running, out = len(order), 0.0, {}
    for i, k in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[k]))
        out[k] = running
    return {k: out.get(k, float("nan")) for k in p}


def joint_wald(beta: np.ndarray, cov: np.ndarray) -> dict:
    """Wald chi-square test that every condition effect is 0."""
    try:
        chi2 = float(beta @ np.linalg.solve(cov, beta))
    except np.linalg.LinAlgError:
        return {"chi2": None, "df": len(beta), "p": None}
    return {"chi2": chi2, "df": len(beta), "p": float(stats.chi2.sf(chi2, len(beta)))}


def _typical(fit, names, baseline, z) -> dict[str, dict]:
    """The model's accuracy for a typical participant (random effect 0) on a typical item:
    expit(intercept [+ effect]), with the Wald interval carried through the logit."""
    out = {}
    for k, c in enumerate([baseline, *names[1:]]):
        a = np.zeros(len(fit.beta))
        a[0] = 1.0
        if k:
            a[k] = 1.0
        eta, s = float(a @ fit.beta), float(np.sqrt(a @ fit.cov @ a))
        out[c] = {
            "estimate": float(stats.logistic.cdf(eta)),
            "ci": [float(stats.logistic.cdf(eta - z * s)), float(stats.logistic.cdf(eta + z * s))],
        }
    return out


def cluster_bootstrap(y, X, participant, item, condition, fit, names, *, draws, seed, level):
    """Participants resampled with replacement within each condition (the group sizes
    stay fixed), the model refitted on each resample (warm-started at the estimate); a
    participant drawn twice enters as two participants.  Percentile intervals; a resample
    without a finite estimate is counted in ``failed`` and left out."""
    rng = np.random.default_rng(seed)
    order = np.argsort(participant, kind="stable")
    starts = np.searchsorted(participant[order], np.arange(participant.max() + 2))
    person_condition = np.empty(participant.max() + 1, dtype=object)
    person_condition[participant] = condition
    groups = [np.flatnonzero(person_condition == c) for c in pd.unique(condition)]
    estimates, failed = [], 0
    for _ in range(draws):
        drawn = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        rows = [order[starts[p] : starts[p + 1]] for p in drawn]
        sizes = np.array([len(r) for r in rows])
        rows = np.concatenate(rows)
        new_participant = np.repeat(np.arange(len(drawn)), sizes)
        _, new_item = np.unique(item[rows], return_inverse=True)
        refit = glmm.fit_glmm(
            y[rows], X[rows], new_participant, new_item.ravel(), start=fit, hessian=False
        )
        if refit.converged:
            estimates.append(refit.beta[1:])
        else:
            failed += 1
    alpha = 1 - level
    result = {"n": draws, "seed": seed, "level": level, "failed": failed,
              "method": "percentile, participants resampled within conditions"}  # fmt: skip
    if estimates:
        values = np.array(estimates)
        lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2], axis=0)
        result["ci"] = {c: [float(lo[k]), float(hi[k])] for k, c in enumerate(names)}
        result["se"] = {c: float(values[:, k].std(ddof=1)) for k, c in enumerate(names)}
    return result


def accuracy_by_condition(test: pd.DataFrame, conditions, chance: float) -> list[dict]:
    """Each condition's accuracy against chance: the share of answers correct, and the
    mean of the participants' accuracies with a t interval over participants and a
    two-sided one-sample t test against the chance level (participants are independent;
    the items are taken as given)."""
    per = test.groupby(["condition", "participant"])["correct"].mean()
    rows = []
    for c in conditions:
        values = per.loc[c].to_numpy() if c in per.index.get_level_values(0) else np.array([])
        answers = test.loc[test["condition"] == c, "correct"]
        row = {
            "condition": c,
            "participants": len(values),
            "answers": len(answers),
            "correct": int(answers.sum()),
            "share": float(answers.mean()) if len(answers) else None,
            "mean": float(values.mean()) if len(values) else None,
            "ci": None,
            "t": None,
            "p_vs_chance": None,
            "chance": chance,
        }
        if len(values) >= 2 and values.std(ddof=1) > 0:
            sem = values.std(ddof=1) / np.sqrt(len(values))
            q = stats.t.isf((1 - LEVEL) / 2, len(values) - 1)
            row["ci"] = [float(values.mean() - q * sem), float(values.mean() + q * sem)]
            row["t"] = float((values.mean() - chance) / sem)
            row["p_vs_chance"] = float(2 * stats.t.sf(abs(row["t"]), len(values) - 1))
        rows.append(row)
    return rows


def confidence_tables(test: pd.DataFrame, conditions, baseline) -> tuple[list[dict], list[dict]]:
    """Agreement: each condition's mean confidence (1-4) on the model's right and wrong
    predictions (participant means, t intervals), and each condition's difference from the
    baseline on each (Welch's t test on the participant means)."""
    frame = test.assign(confidence=test["response"].astype(float))
    frame = frame[frame["model_correct"].notna()]
    per = frame.groupby(["model_correct", "condition", "participant"])["confidence"].mean()
    table, versus = [], []
    for value, key in ((1, "model_right"), (0, "model_wrong")):
        means = {}
        for c in conditions:
            try:
                v = per.loc[(value, c)].to_numpy()
            except KeyError:
                v = np.array([])
            means[c] = v
            row = {"condition": c, "predictions": key, "participants": len(v),
                   "mean": float(v.mean()) if len(v) else None, "ci": None}  # fmt: skip
            if len(v) >= 2:
                sem = v.std(ddof=1) / np.sqrt(len(v))
                q = stats.t.isf((1 - LEVEL) / 2, len(v) - 1)
                row["ci"] = [float(v.mean() - q * sem), float(v.mean() + q * sem)]
            table.append(row)
        base = means[baseline]
        for c in conditions:
            if c == baseline:
                continue
            v = means[c]
            row = {"condition": c, "predictions": key, "difference": None, "ci": None, "p": None}
            if len(v) >= 2 and len(base) >= 2:
                test_ = stats.ttest_ind(v, base, equal_var=False)
                diff = float(v.mean() - base.mean())
                ci = test_.confidence_interval(LEVEL)
                row.update(difference=diff, ci=[float(ci.low), float(ci.high)],
                           p=float(test_.pvalue))  # fmt: skip
            versus.append(row)
    return table, versus


def _model_warnings(model: ConditionModel, selection, conditions, alpha) -> list[str]:
    out = []
    kept = selection.participants.loc[selection.participants["kept"]]
    per = kept["condition"].value_counts()
    small = [c for c in conditions if per.get(c, 0) < MIN_PER_CONDITION]
    if small:
        out.append(
            f"fewer than {MIN_PER_CONDITION} kept participants in "
            + ", ".join(f"{c} ({per.get(c, 0)})" for c in small)
            + ": the Wald intervals' coverage was measured from 10 participants per condition up "
            "(93-96% for a 95% interval), not below; read the intervals as rough"
        )
    if model.fit is None or not model.fit.converged:
        out.append(f"the primary model was not fitted: {model.note}")
    elif model.note:
        out.append(f"the primary model: {model.note}")
    elif any(model.fit.boundary):
        which = [n for n, b in zip(("participant", "item"), model.fit.boundary, strict=True) if b]
        out.append(
            f"the {' and '.join(which)} standard deviation was estimated at 0 (the boundary): "
            "the data show no such variation, and the model is then the simpler one without it"
        )
    return out


def _check_enough(selection: ResponseSelection, responses: Responses) -> None:
    """Every condition needs two kept participants; say why when it has fewer."""
    kept = selection.participants.loc[selection.participants["kept"]]
    per = kept["condition"].value_counts()
    short = [c for c in responses.conditions if per.get(c, 0) < 2]
    if not short:
        return
    raise ResponsesError(
        "too few kept participants in condition(s) "
        + ", ".join(f"{c} ({count(int(per.get(c, 0)), 'participant')})" for c in short)
        + f" {selection.filtering_note()}; each condition needs at least 2"
    )
