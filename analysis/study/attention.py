"""Which participants are analysed: the paper's attention-check rule plus completeness.

The paper keeps "responses that pass at least 4 of the 5 attention checks" from completed
surveys: at most one check failed.  For a survey with any number of checks the default
threshold is the same rule, every check but one (:func:`pass_threshold`, as the study
server's exports apply it): 4 of 5, 1 of 2, 0 of 1 (a single check then excludes
nobody; pass ``min_checks=1`` to require it).  An explicit ``min_checks`` overrides it.
Here, per participant:

* complete survey (all real questions and all checks answered, and the server's
  ``completed`` flag true when the export has one): kept iff checks passed >= min_checks;
* incomplete survey: excluded by default ("incomplete") and counted separately; with
  ``include_incomplete`` it is kept iff it cannot already have failed the rule, i.e. its
  failed checks <= (checks in the survey - min_checks), and it answered at least one real
  question.  For complete surveys both formulations are the same rule.

Every participant gets one row in the returned table with the reason for its exclusion
(empty when kept), so every exclusion can be reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from explainers.votes_schema import pass_threshold as default_pass_threshold

from .votes import SurveyCounts, Votes, VotesError

__all__ = ["Selection", "REASONS", "pass_threshold", "select_participants"]

#: exclusion reasons, in the order a participant is tested against them
REASONS = {
    "incomplete": "incomplete survey",
    "attention": "failed attention checks",
    "no_votes": "no real question answered",
    "speeder": "median response time below the pre-declared speeder threshold",
}


class ExclusionCounts:
    """Counts of a selection whose ``participants`` frame has ``kept`` and ``reason``
    columns; ``REASONS`` names the reasons it reports (the votes' by default)."""

    REASONS = REASONS

    @property
    def total(self) -> int:
        return len(self.participants)

    @property
    def kept(self) -> int:
        return int(self.participants["kept"].sum())

    @property
    def excluded(self) -> int:
        return self.total - self.kept

    def excluded_by_reason(self) -> dict[str, int]:
        reasons = self.participants.loc[~self.participants["kept"], "reason"]
        counts = reasons.value_counts()
        return {key: int(counts.get(key, 0)) for key in self.REASONS}

    def filtering_note(self) -> str:
        """"after filtering N participants (excluded: ...)", with the option that would
        keep incomplete surveys when they were left out: the tail of a too-few error."""
        from ..words import count

        by_reason = self.excluded_by_reason()
        reasons = ", ".join(f"{n} {self.REASONS[k]}" for k, n in by_reason.items() if n)
        hint = ""
        if by_reason["incomplete"] and not self.include_incomplete:
            hint = " (--include-incomplete keeps incomplete surveys)"
        return (
            f"after filtering {count(self.total, 'participant')} (excluded: "
            f"{reasons or 'none'}){hint}"
        )


@dataclass
class Selection(ExclusionCounts):
    """The outcome of filtering.

    ``participants``: one row per participant (index participant_id) with answers, real,
    checks, checks_passed, checks_failed, complete, kept, reason (a key of REASONS or "")
    and detail (a human sentence).  ``votes``: the kept participants' real answers only.
    """

    participants: pd.DataFrame
    votes: pd.DataFrame
    min_checks: int
    include_incomplete: bool
    speeder_ms: int | None = None


def pass_threshold(design: SurveyCounts) -> int:
    """Checks a complete survey must pass by default: all but one (the paper's 4 of 5)."""
    return default_pass_threshold(design.attention_checks)


def select_participants(
    votes: Votes,
    min_checks: int | None = None,
    include_incomplete: bool = False,
    speeder_ms: int | None = None,
) -> Selection:
    """Apply the exclusion rules (vectorised: one groupby over all answers).

    ``min_checks``: checks a complete survey must pass; None is :func:`pass_threshold`
    of the survey.  ``speeder_ms``: the optional, pre-declared speeder rule (off by
    default, as in the paper): a participant whose median real-question response time
    is below it is excluded ("speeder"), after the attention rule.
    """
    design = votes.design
    if min_checks is None:
        min_checks = pass_threshold(design)
    if not 0 <= min_checks <= design.attention_checks:
        raise VotesError(
            f"--min-checks must be between 0 and {design.attention_checks}, got {min_checks}"
        )
    table = votes.table
    grouped = table.groupby("participant_id", sort=True)
    per = grouped.agg(
        answers=("is_attention_check", "size"),
        checks=("is_attention_check", "sum"),
        checks_passed=("passed", "sum"),
    )
    per["real"] = per["answers"] - per["checks"]
    per["median_ms"] = _median_response_ms(table, per.index, votes, speeder_ms)
    per["checks_failed"] = per["checks"] - per["checks_passed"]
    by_count = (per["real"] == design.real_questions) & (per["checks"] == design.attention_checks)
    flagged = grouped["completed"].max().astype(bool) if votes.has_completed else by_count
    per["complete"] = by_count & flagged

    allowed_failures = design.attention_checks - min_checks
    failed = np.where(
        per["complete"], per["checks_passed"] < min_checks, per["checks_failed"] > allowed_failures
    )
    reason = np.select(
        [
            ~per["complete"] & (not include_incomplete),
            failed,
            per["real"] == 0,
            (per["median_ms"] < speeder_ms).to_numpy() if speeder_ms is not None else False,
        ],
        ["incomplete", "attention", "no_votes", "speeder"],
        default="",
    )
    per["reason"] = reason
    per["kept"] = reason == ""
    per["detail"] = _details(per, design, min_checks, by_count & ~flagged)
    per = per[
        [
            "answers",
            "real",
            "checks",
            "checks_passed",
            "checks_failed",
            "median_ms",
            "complete",
            "kept",
            "reason",
            "detail",
        ]
    ]
    kept_ids = per.index[per["kept"].to_numpy()]
    real_votes = table[~table["is_attention_check"] & table["participant_id"].isin(kept_ids)]
    return Selection(
        per, real_votes.reset_index(drop=True), min_checks, include_incomplete, speeder_ms
    )


def _median_response_ms(table, index, votes: Votes, speeder_ms: int | None) -> pd.Series:
    """Each participant's median real-question response time (NaN when unknown)."""
    if speeder_ms is not None and not votes.has_response_ms:
        raise VotesError("--exclude-speeders needs a response_ms column in the export")
    if not votes.has_response_ms:
        return pd.Series(np.nan, index=index)
    real = table.loc[~table["is_attention_check"], ["participant_id", "response_ms"]]
    times = real.assign(response_ms=real["response_ms"].astype("float64"))
    return times.groupby("participant_id")["response_ms"].median().reindex(index)


def _details(per: pd.DataFrame, design, min_checks: int, unflagged: pd.Series) -> pd.Series:
    """One sentence per excluded participant (vectorised string building)."""
    answered = (
        "answered "
        + per["answers"].astype(str)
        + f" of {design.answers} questions ("
        + per["real"].astype(str)
        + " real, "
        + per["checks"].astype(str)
        + " checks)"
    )
    answered = answered.where(~unflagged, answered + " but not marked completed by the server")
    checks_complete = (
        "passed "
        + per["checks_passed"].astype(str)
        + f" of {design.attention_checks} "
        + f"attention checks; at least {min_checks} required"
    )
    allowed = design.attention_checks - min_checks
    checks_partial = (
        "incomplete survey: failed "
        + per["checks_failed"].astype(str)
        + " of "
        + per["checks"].astype(str)
        + f" attention checks answered; at most {allowed} "
        + "failure(s) allowed"
    )
    checks = checks_complete.where(per["complete"], checks_partial)
    detail = pd.Series("", index=per.index, dtype=object)
    speed = "median response time " + per["median_ms"].round().astype("Int64").astype(str) + " ms"
    for reason, text in (
        ("incomplete", answered),
        ("attention", checks),
        ("no_votes", answered),
        ("speeder", speed),
    ):
        mask = per["reason"] == reason
        detail[mask] = text[mask]
    return detail
