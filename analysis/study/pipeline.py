"""From an export table to every number of the report (no files written here).

``run_analysis`` = validate (votes.py) -> filter (attention.py) -> the primary analysis,
a conditional logit of the choices (choice.py) -> per-participant proportions -> the
paper's ANOVA + Tukey (the reproduction) and the repeated-measures alternatives
(stats.py) -> robustness (robustness.py).  Everything is vectorised over participants;
the only Python loops run over methods, pairs or digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..words import count
from . import choice, robustness, stats
from .attention import Selection, select_participants
from .votes import SurveyCounts, Votes, VotesError, restrict_rows, validate_votes

__all__ = ["Analysis", "run_analysis"]


@dataclass
class Analysis:
    """All results of one analysis run (``report.py`` turns it into files)."""

    votes: Votes
    selection: Selection
    counts: pd.DataFrame  # kept participants x methods, vote counts
    props: pd.DataFrame  # kept participants x methods, proportions
    descriptives: pd.DataFrame
    anova: stats.AnovaResult
    rm_anova: dict
    tukey: list[dict]
    friedman: dict
    wilcoxon: list[dict]
    position_bias: dict
    by_digit: pd.DataFrame  # digit x methods, vote counts
    alpha: float
    choice_model: choice.ChoiceModel | None = None
    choice_note: str = ""
    robustness: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: the human estimates next to an evaluation's metric orders (analysis.evaluate.compare)
    human_vs_metrics: dict | None = None

    @property
    def methods(self) -> tuple[str, ...]:
        return self.votes.methods

    @property
    def vote_totals(self) -> dict[str, int]:
        return {m: int(self.counts[m].sum()) for m in self.methods}


def run_analysis(
    raw: pd.DataFrame,
    *,
    min_checks: int | None = None,
    include_incomplete: bool = False,
    design: SurveyCounts | None = None,
    methods: Sequence[str] | None = None,
    alpha: float = 0.05,
    source: str = "votes",
    study: str | None = None,
    mode: str | None = None,
    speeder_ms: int | None = None,
    reference: str | None = None,
    bootstrap: int = choice.BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> Analysis:
    """Validate, filter and analyse an export table; raise VotesError on unusable input.

    ``methods`` and ``design`` default to the data's (:func:`.votes.validate_votes`),
    ``min_checks`` to the survey's pass threshold (:func:`.attention.pass_threshold`:
    every check but one).  ``study`` / ``mode`` keep only the rows of one study / server
    mode (the export's optional ``study`` and ``mode`` columns).  ``speeder_ms`` switches
    on the optional speeder exclusion; ``reference`` (default
    :func:`.choice.default_reference`), ``bootstrap`` and ``seed`` set the primary
    model's reference method and its cluster bootstrap.
    """
    if not 0 < alpha < 1:
        raise VotesError(f"alpha must be between 0 and 1, got {alpha}")
    raw, warnings = restrict_rows(raw, study, mode)
    votes = validate_votes(raw, design, source, methods)
    methods = votes.methods
    reference = choice.default_reference(methods) if reference is None else reference
    if reference not in methods:
        raise VotesError(f"unknown reference method {reference!r}; one of {', '.join(methods)}")
    if bootstrap < 0:
        raise VotesError(f"the bootstrap needs a non-negative number of draws, got {bootstrap}")
    selection = select_participants(votes, min_checks, include_incomplete, speeder_ms)
    warnings += votes.warnings
    _check_enough(selection)

    kept_ids = selection.participants.index[selection.participants["kept"].to_numpy()]
    counts = stats.vote_matrix(selection.votes, kept_ids, methods)
    props = stats.proportions(counts)
    anova = stats.one_way_anova([props[m].to_numpy() for m in methods])
    tukey = stats.tukey_hsd(props, alpha)
    if not np.isfinite(anova.F):
        warnings.append(
            "every kept participant gave each method the same proportion (no within-method "
            "variance): the ANOVA F statistic, its p-value and the Tukey p-values are undefined"
        )
        for row in tukey:  # statsmodels divides by a zero MSE: no honest p exists
            row.update(p_adj=float("nan"), reject=None)
    n_incomplete_kept = int((~selection.participants.loc[kept_ids, "complete"]).sum())
    if n_incomplete_kept:
        have = "has an incomplete survey" if n_incomplete_kept == 1 else "have incomplete surveys"
        warnings.append(
            f"{count(n_incomplete_kept, 'kept participant')} {have} "
            "(--include-incomplete); their proportions rest on fewer than "
            f"{votes.design.real_questions} votes each"
        )
    position = stats.position_bias(selection.votes, votes.has_position, len(methods))
    if position.get("small_expected_counts"):
        warnings.append(
            "fewer than 5 expected answers per screen slot: the position-bias chi-square "
            "approximation is unreliable"
        )
    digits = selection.votes["digit"].astype("Int64")
    by_digit = (
        pd.crosstab(digits, pd.Categorical(selection.votes["chosen_method"], methods))
        .reindex(columns=list(methods), fill_value=0)
        .rename_axis(index="digit", columns=None)
    )
    model, note, robust = _primary(votes, selection, counts, reference, bootstrap, seed)
    warnings += small_sample_warnings(selection.kept, model, alpha)
    return Analysis(
        votes=votes,
        selection=selection,
        counts=counts,
        props=props,
        descriptives=stats.descriptives(props),
        anova=anova,
        rm_anova=stats.repeated_measures_anova(props),
        tukey=tukey,
        friedman=stats.friedman_test(props),
        wilcoxon=stats.wilcoxon_holm(props, alpha),
        position_bias=position,
        by_digit=by_digit,
        alpha=alpha,
        choice_model=model,
        choice_note=note,
        robustness=robust,
        warnings=warnings,
    )


#: below this many kept participants the report says the primary model's bootstrap
#: intervals are too narrow: measured by scripts/small_sample_coverage.py on null studies
#: (docs/results/small-sample-coverage.json; docs/analysis.md, "Small studies")
MIN_PARTICIPANTS = 20


def small_sample_warnings(kept: int, model, alpha: float) -> list[str]:
    """What the report must say about a small study: too few participants for its
    intervals, and every method whose interval and p-value disagree, with why."""
    out = []
    if kept < MIN_PARTICIPANTS:
        out.append(
            f"only {count(kept, 'kept participant')}: below {MIN_PARTICIPANTS}, the primary "
            "model's bootstrap intervals are too narrow (on simulated studies with no method "
            "effect, 3 / 5 / 10 participants, they excluded 0 for 29% / 16% / 10% of "
            "contrasts instead of 5%; docs/analysis.md, Small studies); its cluster-robust "
            "p-values held near 5% at every size measured, so read the p-values, not the "
            "intervals"
        )
    if model is None:
        return out
    level = model.bootstrap["level"]
    for m, (lo, hi) in model.ci.items():
        p = model.p_wald.get(m)
        if m == model.reference or p is None or not (np.isfinite(lo) and np.isfinite(hi)):
            continue
        if (lo > 0 or hi < 0) != (p < alpha):
            out.append(
                f"{m} vs {model.reference}: the {level:.0%} bootstrap interval "
                f"[{lo:.2f}, {hi:.2f}] {'excludes' if lo > 0 or hi < 0 else 'includes'} 0 while "
                f"the Wald p = {p:.3f} is {'below' if p < alpha else 'not below'} {alpha}; they "
                "are different approximations (percentile cluster bootstrap; cluster-robust "
                "Wald against t(G - 1)) and part ways with few participants or a skewed "
                "estimate; on simulated null studies the p-value kept its error rate and the "
                "interval did not, so the p-value is the one to report"
            )
    return out


def _primary(votes: Votes, selection: Selection, counts, reference, draws, seed):
    """The conditional logit and the robustness figures (None + a reason when the export
    lacks the screen order, as exports written before the options column do)."""
    robust = {
        "reversals": robustness.reversal_counts(counts),
        "top_rank": robustness.top_rank_reversal(counts),
    }
    if not votes.has_options:
        return None, "the export has no options column (screen order of each question)", robust
    real = selection.votes
    if (real["options"] == "").any():
        return None, "some kept answers lack their screen order (options)", robust
    data = choice.choice_data(real, votes.methods)
    try:
        model = choice.fit_choice_model(data, reference=reference, draws=draws, seed=seed)
    except ValueError as exc:
        return None, str(exc), robust
    model.cross_check = choice.marginal_cross_check(real, votes.methods, reference)
    model.statsmodels_check = choice.statsmodels_check(real, model)
    robust["by_digit"] = robustness.digit_effects(data, reference)
    robust["digit_interaction"] = robustness.interaction_test(
        real, votes.methods, reference, seed=seed
    )
    return model, "", robust


def _check_enough(selection: Selection) -> None:
    """The tests need two kept participants at least; say why when there are fewer."""
    if selection.kept >= 2:
        return
    left = "nothing left" if selection.kept == 0 else "only 1 participant left"
    raise VotesError(f"{left} {selection.filtering_note()}; the analysis needs at least 2")
