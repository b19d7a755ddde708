"""Reading, validating and filtering a responses export (forward simulation, distinction,
agreement): the columns of ``explainers.votes_schema.RESPONSE_COLUMNS``.

One row is one answer.  The required columns are ``REQUIRED_RESPONSE_COLUMNS`` (participant,
condition, task, phase, item, correct, response, rt_ms, model_correct); ``position``,
``study``, ``mode``, ``adapter``, ``completed`` and ``checks_passed`` are used when present.

Errors (one line, :class:`ResponsesError`, a :class:`~analysis.study.votes.VotesError`):
a missing or duplicated column, no rows, an unknown task or several tasks in one file, an
unknown phase, a ``correct`` that is not 0/1 (on test and check rows; learning rows may
leave it empty), a ``model_correct`` that is not 0/1 (empty allowed on checks), a response
outside the task's scale, an agreement row whose ``correct`` contradicts its confidence and
``model_correct``, a participant in two conditions (the design is between subjects), the
same (participant, phase, item) twice, a ``completed`` flag that contradicts itself, mixed
studies or modes, no baseline condition, fewer than two conditions.

Filtering follows the votes analysis (:mod:`analysis.study.attention`): complete surveys
only (the server's ``completed`` flag, else the most common number of test answers and
checks), at least ``min_checks`` attention checks passed (default
``explainers.votes_schema.pass_threshold``: every check but one), optional speeder rule;
rows recorded in debug or sandbox mode are left out unless that mode is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.study.attention import ExclusionCounts
from analysis.study.votes import (
    VotesError,
    _clean,
    _parse_bool,
    _parse_int,
    _row_numbers,
    check_columns,
    order_methods,
    read_export_csv,
    restrict_rows,
)
from explainers.votes_schema import REQUIRED_RESPONSE_COLUMNS, TASKS, pass_threshold

from ..words import count

__all__ = [
    "BASELINE",
    "CHANCE",
    "PHASES",
    "REASONS",
    "Responses",
    "ResponsesError",
    "ResponseSelection",
    "read_responses_csv",
    "select_responses",
    "validate_responses",
]

#: the condition that shows no explanation: the baseline unless --baseline says otherwise
BASELINE = "none"
PHASES = ("learn", "test", "check")
#: the probability of a correct answer by guessing, where the task fixes it (forward
#: simulation's is 1 / classes, from --chance or the responses)
CHANCE = {"distinction": 0.25, "agreement": 0.5}
#: the response scale of distinction (options) and agreement (confidence)
SCALE = (1, 4)
#: exclusion reasons, in the order a participant is tested against them (the votes
#: analysis's rules, analysis.study.attention)
REASONS = {
    "incomplete": "incomplete survey",
    "attention": "failed attention checks",
    "no_answers": "no test item answered",
    "speeder": "median response time below the pre-declared speeder threshold",
}


class ResponsesError(VotesError):
    """The responses cannot be analysed as given (one readable line saying why)."""


@dataclass
class Responses:
    """Validated answers with typed columns: participant, condition, phase, item (str),
    correct (float: 0/1, NaN on a learning row without one), response, rt_ms, position
    (Int64), model_correct (Int64, missing on checks), completed (boolean)."""

    table: pd.DataFrame
    task: str
    conditions: tuple[str, ...]  # the baseline first, then the others in a fixed order
    baseline: str
    source: str
    has_completed: bool
    has_rt: bool
    warnings: list[str] = field(default_factory=list)
    chance: float | None = None
    chance_source: str = ""


@dataclass
class ResponseSelection(ExclusionCounts):
    """Who is analysed.  ``participants``: one row per participant (index participant):
    condition, test, checks, checks_passed, learn, complete, kept, reason, detail.
    ``test``: the kept participants' test answers."""

    participants: pd.DataFrame
    test: pd.DataFrame
    min_checks: int
    attention_checks: int
    test_answers: int
    include_incomplete: bool
    speeder_ms: int | None = None
    REASONS = REASONS  # the help designs' reasons (ExclusionCounts reports these)


def read_responses_csv(path: str | Path) -> pd.DataFrame:
    """An export CSV as strings (typing happens in :func:`validate_responses`)."""
    return read_export_csv(path, "responses", ResponsesError)


def restrict_modes(
    raw: pd.DataFrame, study: str | None, mode: str | None
) -> tuple[pd.DataFrame, list[str]]:
    """One study and one server mode: ``mode`` if given, else live rows only (rows recorded
    in debug or sandbox mode are test clicks, left out with a warning)."""
    warnings: list[str] = []
    if mode is None and "mode" in raw.columns:
        values = _clean(raw["mode"], lower=True)
        test_rows = values.isin(["debug", "sandbox"]).to_numpy()
        if test_rows.all():
            found = sorted(set(values))
            raise ResponsesError(
                f"every answer was recorded in {' or '.join(map(repr, found))} mode (test "
                "data); give --mode debug or --mode sandbox to analyse them"
            )
        if test_rows.any():
            warnings.append(
                f"{count(int(test_rows.sum()), 'answer')} recorded in debug or sandbox mode "
                "(test data) were left out; --mode names a test mode to analyse one"
            )
            raw = raw.loc[~test_rows]
    raw, more = restrict_rows(raw, study, mode)
    return raw, warnings + more


def validate_responses(
    raw: pd.DataFrame,
    *,
    source: str = "responses",
    baseline: str | None = None,
    chance: float | None = None,
) -> Responses:
    """Type and check an export table; raise :class:`ResponsesError` on anything unusable
    (the module docstring lists the checks)."""
    check_columns(raw, source, REQUIRED_RESPONSE_COLUMNS, ResponsesError)
    raw = raw.reset_index(drop=True).astype(object)
    raw = raw.where(raw.notna(), "").astype(str)
    n = len(raw)
    everywhere = np.ones(n, dtype=bool)
    _single(raw, source)

    participant = _required_text(raw, "participant")
    condition = _required_text(raw, "condition", lower=True)
    task = _task(raw)
    phase = _clean(raw["phase"], lower=True)
    bad = ~phase.isin(PHASES).to_numpy()
    if bad.any():
        example = raw["phase"].to_numpy()[np.flatnonzero(bad)[0]]
        raise ResponsesError(
            f"column 'phase' must be one of {', '.join(PHASES)}: {bad.sum()} row(s) are "
            f"not, e.g. {example!r} on line {_row_numbers(bad)}"
        )
    is_test = (phase == "test").to_numpy()
    is_check = (phase == "check").to_numpy()
    item = _required_text(raw, "item")
    correct = _parse_int(raw["correct"], "correct", is_test | is_check, lo=0, hi=1)
    needs_model = is_test & (task == "agreement")
    model_correct = _parse_int(raw["model_correct"], "model_correct", needs_model, lo=0, hi=1)
    lo, hi = (0, None) if task == "forward" else SCALE
    response = _parse_int(raw["response"], "response", is_test, lo=lo, hi=hi)
    rt_ms = _parse_int(raw["rt_ms"], "rt_ms", np.zeros(n, dtype=bool), lo=0)
    position = pd.Series(pd.NA, index=raw.index, dtype="Int64")
    if "position" in raw.columns:
        position = _parse_int(raw["position"], "position", np.zeros(n, dtype=bool), lo=0)
    completed = pd.Series(pd.NA, index=raw.index, dtype="boolean")
    has_completed = "completed" in raw.columns and bool((_clean(raw["completed"]) != "").any())
    if has_completed:
        completed = pd.Series(
            _parse_bool(raw["completed"], "completed", everywhere), index=raw.index
        ).astype("boolean")

    table = pd.DataFrame(
        {
            "participant": participant,
            "condition": condition,
            "phase": phase,
            "item": item,
            "correct": correct.astype("Float64").to_numpy(dtype=float, na_value=np.nan),
            "response": response,
            "rt_ms": rt_ms,
            "model_correct": model_correct,
            "position": position,
            "completed": completed,
        }
    )
    if task == "agreement":
        _check_agreement(table, is_test)
    _check_design(table, has_completed)
    warnings = _check_server_counts(raw, table)
    conditions, baseline = _conditions(table, baseline)
    chance, chance_source, more = _chance(task, table, chance)
    return Responses(
        table=table,
        task=task,
        conditions=conditions,
        baseline=baseline,
        source=source,
        has_completed=has_completed,
        has_rt=bool(rt_ms.notna().any()),
        warnings=warnings + more,
        chance=chance,
        chance_source=chance_source,
    )


def _single(raw: pd.DataFrame, source: str) -> None:
    for column in ("study", "mode"):
        if column not in raw.columns:
            continue
        values = set(_clean(raw[column])) - {""}
        if len(values) > 1:
            shown = ", ".join(map(repr, sorted(values)[:5]))
            raise ResponsesError(
                f"{source} mixes {len(values)} {column} values ({shown}); analyse one at a "
                f"time with --{column}"
            )


def _required_text(raw: pd.DataFrame, column: str, lower: bool = False) -> pd.Series:
    values = _clean(raw[column], lower=lower)
    empty = (values == "").to_numpy()
    if empty.any():
        raise ResponsesError(f"{empty.sum()} row(s) have no {column} (line {_row_numbers(empty)})")
    return values


def _task(raw: pd.DataFrame) -> str:
    tasks = sorted(set(_clean(raw["task"], lower=True)))
    if len(tasks) > 1:
        raise ResponsesError(
            f"the export mixes tasks ({', '.join(map(repr, tasks))}); each task is its own "
            "study: export and analyse them separately"
        )
    if tasks[0] not in TASKS:
        raise ResponsesError(
            f"unknown task {tasks[0]!r}; one of {', '.join(TASKS)} (a preference study's "
            "votes go to --votes)"
        )
    return tasks[0]


def _check_agreement(table: pd.DataFrame, is_test: np.ndarray) -> None:
    """correct = (confidence >= 3) == model_correct (votes_schema): a row that says
    otherwise was scored by another rule, and the analysis of ``correct`` would be wrong."""
    says_right = (table["response"] >= 3).to_numpy(dtype=bool, na_value=False)
    model_right = (table["model_correct"] == 1).to_numpy(dtype=bool, na_value=False)
    expected = (says_right == model_right).astype(float)
    bad = is_test & (table["correct"].to_numpy() != expected)
    if bad.any():
        raise ResponsesError(
            f"{bad.sum()} agreement row(s) have a 'correct' that contradicts their confidence "
            "and model_correct (correct = 1 when a confidence of 3-4 meets a right prediction "
            f"or 1-2 a wrong one), e.g. line {_row_numbers(bad)}"
        )


def _check_design(table: pd.DataFrame, has_completed: bool) -> None:
    per = table.groupby("participant", sort=False)["condition"].nunique()
    both = per[per > 1]
    if len(both):
        raise ResponsesError(
            f"{count(len(both), 'participant')} answered in more than one condition (e.g. "
            f"{both.index[0]!r}); the design assigns each participant to one condition"
        )
    dup = table.duplicated(["participant", "phase", "item"], keep=False).to_numpy()
    if dup.any():
        first = table.loc[dup].iloc[0]
        raise ResponsesError(
            f"duplicated answers: participant {first.participant!r} answered {first.phase} item "
            f"{first['item']!r} more than once (lines {_row_numbers(dup)})"
        )
    if has_completed:
        flags = table.groupby("participant", sort=False)["completed"].agg(["min", "max"])
        mixed = flags[flags["min"] != flags["max"]]
        if len(mixed):
            raise ResponsesError(
                f"{count(len(mixed), 'participant')} have contradictory 'completed' values "
                f"across their rows, e.g. {mixed.index[0]!r}"
            )


def _conditions(table: pd.DataFrame, baseline: str | None) -> tuple[tuple[str, ...], str]:
    present = set(table["condition"])
    named = baseline is not None
    baseline = (baseline or BASELINE).strip().lower()
    if baseline not in present:
        listed = ", ".join(sorted(present))
        if named:
            raise ResponsesError(f"--baseline {baseline!r} is not a condition of the export "
                                 f"({listed})")  # fmt: skip
        raise ResponsesError(
            f"no condition {BASELINE!r} (no explanation) to compare with: the export has "
            f"{listed}; name the baseline with --baseline"
        )
    if len(present) < 2:
        raise ResponsesError(
            f"the analysis compares at least two conditions; the export has only {baseline!r}"
        )
    return (baseline, *order_methods(present - {baseline})), baseline


def _chance(task: str, table: pd.DataFrame, chance: float | None):
    """The guessing rate: given, fixed by the task, or 1 / classes read from forward
    simulation's responses (class indices from 0)."""
    if chance is not None:
        if not 0 < chance < 1:
            raise ResponsesError(f"--chance must be between 0 and 1, got {chance}")
        return float(chance), "given with --chance", []
    if task in CHANCE:
        return CHANCE[task], f"the {task} task's", []
    answers = table.loc[table["phase"].isin(["learn", "test"]), "response"].dropna()
    classes = int(answers.max()) + 1 if len(answers) else 0
    if classes < 2:
        raise ResponsesError(
            "cannot read the number of classes from the responses; give --chance 1/classes"
        )
    source = f"1/{classes}: {classes} classes, read from the responses (largest class index)"
    warning = (
        f"forward simulation's chance level was read from the responses as 1/{classes} (the "
        "largest class index answered, plus one); a class nobody answered is not seen, so "
        "state it with --chance if in doubt"
    )
    return 1.0 / classes, source, [warning]


def _check_server_counts(raw: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """The export's per-participant ``checks_passed`` against its check rows."""
    if "checks_passed" not in raw.columns:
        return []
    stated = pd.to_numeric(_clean(raw["checks_passed"]), errors="coerce")
    if stated.isna().all():
        return []
    checks = table["phase"] == "check"
    frame = pd.DataFrame(
        {"pid": table["participant"], "stated": stated,
         "passed": table["correct"].where(checks, 0.0).fillna(0.0)}
    )  # fmt: skip
    per = frame.groupby("pid", sort=False).agg(stated=("stated", "max"), counted=("passed", "sum"))
    bad = per[per["stated"].notna() & (per["stated"] != per["counted"])]
    if bad.empty:
        return []
    return [
        f"the export's checks_passed column disagrees with its check rows for "
        f"{count(len(bad), 'participant')} (e.g. {bad.index[0]!r}: column says "
        f"{int(bad['stated'].iloc[0])}, rows show {int(bad['counted'].iloc[0])}); the analysis "
        "uses the rows"
    ]


def select_responses(
    responses: Responses,
    min_checks: int | None = None,
    include_incomplete: bool = False,
    speeder_ms: int | None = None,
) -> ResponseSelection:
    """Apply the exclusion rules of the votes analysis to a responses export.

    Complete = the server's ``completed`` flag when the export has one, else the most
    common (test answers, checks) count of the export.  A complete survey is kept when it
    passed at least ``min_checks`` checks (default: every check but one); an incomplete
    one is excluded unless ``include_incomplete``, and then kept when it cannot already
    have failed that rule and answered a test item.  ``speeder_ms``: the pre-declared
    speeder rule on the median test response time.
    """
    table = responses.table
    phase = table["phase"]
    flags = pd.DataFrame(
        {
            "participant": table["participant"],
            "test": phase == "test",
            "check": phase == "check",
            "learn": phase == "learn",
            "passed": (phase == "check") & (table["correct"] == 1),
        }
    )
    per = flags.groupby("participant", sort=True).agg(
        test=("test", "sum"), checks=("check", "sum"), checks_passed=("passed", "sum"),
        learn=("learn", "sum"),
    )  # fmt: skip
    per.insert(0, "condition", table.groupby("participant", sort=True)["condition"].first())
    if responses.has_completed:
        marked = table.groupby("participant", sort=True)["completed"].max().astype(bool)
    else:
        marked = pd.Series(True, index=per.index)
    reference = per[marked] if marked.any() else per
    tally = reference.groupby(["test", "checks"]).size().reset_index(name="n")
    best = tally.sort_values(["n", "test", "checks"], ascending=False).iloc[0]
    n_test, n_checks = int(best["test"]), int(best["checks"])
    if responses.has_completed:
        per["complete"] = marked
    else:
        per["complete"] = (per["test"] >= n_test) & (per["checks"] >= n_checks)
    if min_checks is None:
        min_checks = pass_threshold(n_checks)
    if not 0 <= min_checks <= n_checks:
        raise ResponsesError(f"--min-checks must be between 0 and {n_checks}, got {min_checks}")
    per["checks_failed"] = per["checks"] - per["checks_passed"]
    per["median_ms"] = _median_ms(table, per.index, responses, speeder_ms)
    allowed = n_checks - min_checks
    failed = np.where(
        per["complete"], per["checks_passed"] < min_checks, per["checks_failed"] > allowed
    )
    speeder = (per["median_ms"] < speeder_ms).to_numpy() if speeder_ms is not None else False
    per["reason"] = np.select(
        [~per["complete"] & (not include_incomplete), failed, per["test"] == 0, speeder],
        ["incomplete", "attention", "no_answers", "speeder"],
        default="",
    )
    per["kept"] = per["reason"] == ""
    per["detail"] = _details(per, n_test, n_checks, min_checks)
    kept = per.index[per["kept"].to_numpy()]
    test = table[(phase == "test").to_numpy() & table["participant"].isin(kept).to_numpy()]
    return ResponseSelection(
        participants=per,
        test=test.reset_index(drop=True),
        min_checks=min_checks,
        attention_checks=n_checks,
        test_answers=n_test,
        include_incomplete=include_incomplete,
        speeder_ms=speeder_ms,
    )


def _median_ms(table, index, responses: Responses, speeder_ms) -> pd.Series:
    if speeder_ms is not None and not responses.has_rt:
        raise ResponsesError("--exclude-speeders needs rt_ms values in the export")
    test = table.loc[table["phase"] == "test", ["participant", "rt_ms"]]
    times = test.assign(rt_ms=test["rt_ms"].astype("float64"))
    return times.groupby("participant")["rt_ms"].median().reindex(index)


def _details(per: pd.DataFrame, n_test: int, n_checks: int, min_checks: int) -> pd.Series:
    detail = pd.Series("", index=per.index, dtype=object)
    answered = (
        "answered " + per["test"].astype(str) + f" of {n_test} test items and "
        + per["checks"].astype(str) + f" of {n_checks} attention checks"
    )  # fmt: skip
    checks = (
        "passed " + per["checks_passed"].astype(str) + f" of {n_checks} attention checks; at "
        f"least {min_checks} required"
    )  # fmt: skip
    speed = "median response time " + per["median_ms"].round().astype("Int64").astype(str) + " ms"
    for reason, text in (("incomplete", answered), ("attention", checks),
                         ("no_answers", answered), ("speeder", speed)):  # fmt: skip
        mask = per["reason"] == reason
        detail[mask] = text[mask]
    return detail
