"""Loading and validating the study's votes (the study server's export format).

One row is one answer of one participant::

    participant_id, question_index, is_attention_check, digit, chosen_method, passed
    [, position, response_ms, completed, study, mode, ...]

``chosen_method`` names the chosen explanation for a real question and is empty for an
attention check; ``passed`` is a boolean for an attention check and empty for a real
question.  Booleans may be written true/false, True/False or 1/0.  Extra columns are
ignored except ``options`` (a real question's methods in screen order, joined by
``|``; read by the choice model), ``response_ms`` (read by the optional speeder rule),
``position`` (screen slot of the chosen option, 1-k from the left for k methods as the
study server writes it, or 0-(k-1); used by the position-bias check), ``completed`` (the
server's own completion flag), ``checks_passed`` (cross-checked against the rows) and
``study``/``mode`` (an export mixing several is refused).

The methods and the survey design (real questions and checks per participant, class
count) are the caller's or are read from the data: see :func:`infer_methods` and
:func:`infer_design`.  Any number of methods (two or more) and of classes (``digit`` holds
a class index from 0) is accepted; the paper's MNIST replication keeps its four methods
and its 20 + 5 survey.

This module reads CSV files and DataFrames only; reading the study server's database
belongs to the command layer (``analysis.study.cli``).

Every check is vectorised over the whole table: the same code validates 80 or 250,000
rows, and bad input raises :class:`VotesError` with one readable line, never a silently
wrong number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from explainers.bundle import STUDY_METHODS
from explainers.votes_schema import REQUIRED_VOTE_COLUMNS

__all__ = [
    "METHODS",
    "REQUIRED_COLUMNS",
    "SurveyCounts",
    "Votes",
    "VotesError",
    "check_columns",
    "infer_design",
    "infer_methods",
    "is_replication",
    "order_methods",
    "read_votes_csv",
    "as_strings",
    "restrict_rows",
    "validate_votes",
]

#: the paper's four methods in its order: the MNIST replication's methods, and the order
#: any study's tables and plots put those of them it has first
METHODS: tuple[str, ...] = tuple(STUDY_METHODS)
REQUIRED_COLUMNS = REQUIRED_VOTE_COLUMNS
#: the MNIST replication's screen slots: every question shows every method once
N_SLOTS = len(METHODS)
_TRUE = {"true", "1", "t", "yes"}
_FALSE = {"false", "0", "f", "no"}


class VotesError(ValueError):
    """The votes cannot be analysed as given (one readable line saying why)."""


@dataclass(frozen=True)
class SurveyCounts:
    """What one complete survey contains (the paper: 20 real questions, 5 checks, the
    ten MNIST digits).  ``classes`` bounds the ``digit`` column to 0..classes-1; None
    accepts any class index from 0."""

    real_questions: int = 20
    attention_checks: int = 5
    classes: int | None = 10

    @property
    def answers(self) -> int:
        return self.real_questions + self.attention_checks


@dataclass
class Votes:
    """Validated answers, one row per answer, with typed columns.

    ``table`` columns: participant_id (str), question_index (int64), is_attention_check
    (bool), digit (Int64, may be missing on checks), chosen_method (str, "" on checks),
    passed (bool, False on real questions), position (Int64, missing when unknown),
    options (str: a real question's methods in screen order joined by ``|``, "" when
    unknown), response_ms (Int64, missing when unknown), completed (boolean, missing when
    the export has no such column).  ``methods``: the study's methods in the order of
    every table and plot; ``design``: one complete survey.
    """

    table: pd.DataFrame
    has_position: bool
    has_completed: bool
    design: SurveyCounts
    source: str
    warnings: list[str]
    has_options: bool = False
    has_response_ms: bool = False
    methods: tuple[str, ...] = METHODS
    #: where ``methods`` and ``design`` came from: "given", "options", "chosen_method"
    #: or "paper" (the replication's four); "given", "paper" or "inferred"
    methods_source: str = "paper"
    design_source: str = "paper"


def read_votes_csv(path: str | Path) -> pd.DataFrame:
    """Read an export CSV as strings (typing happens in :func:`validate_votes`)."""
    return read_export_csv(path, "votes", VotesError)


def read_export_csv(path: str | Path, what: str, error: type[Exception]) -> pd.DataFrame:
    """One of the server's CSV exports as strings, header names stripped; ``error`` (one
    line naming ``what``) when it is missing, empty or not CSV."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} file not found: {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise error(f"{what} file is empty: {path}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(f"cannot parse {path} as CSV: {first}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def as_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Bring a typed DataFrame to the CSV reader's all-strings form (one code path)."""
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values):
            text = values.map({True: "true", False: "false"})
        elif pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
            text = values.astype("Int64").astype(str)
        else:
            text = values.astype(str)
        out[str(column).strip()] = text.where(values.notna(), "")
    return out.reset_index(drop=True)


def restrict_rows(
    raw: pd.DataFrame, study: str | None = None, mode: str | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Keep one study and/or one server mode (debug, sandbox, live); return warnings.

    An export that mixes studies or modes is refused later by :func:`validate_votes`, so
    test clicks in debug mode can never be pooled with live votes by accident.
    """
    warnings: list[str] = []
    for column, wanted in (("study", study), ("mode", mode)):
        if wanted is None:
            continue
        if column not in raw.columns:
            raise VotesError(f"--{column} {wanted!r} given but the export has no {column} column")
        values = _clean(raw[column])
        present = sorted(set(values.unique()) - {""})
        if wanted not in present:
            raise VotesError(
                f"no answers with {column} {wanted!r}; the export has "
                f"{', '.join(map(repr, present)) or 'no ' + column + ' values'}"
            )
        raw = raw.loc[(values == wanted).to_numpy()]
    if "mode" in raw.columns:
        modes = _distinct(raw, "mode")
        if len(modes) == 1 and modes != {"live"}:
            warnings.append(
                f"these votes were recorded in {modes.pop()!r} mode, not 'live': they are test "
                "data unless the study was deliberately run in that mode"
            )
    return raw.reset_index(drop=True), warnings


def _row_numbers(mask: np.ndarray, limit: int = 3) -> str:
    """Data-line numbers of the offending rows (header is line 1), for error messages."""
    rows = np.flatnonzero(mask)[:limit] + 2
    more = ", ..." if mask.sum() > limit else ""
    return ", ".join(str(r) for r in rows) + more


def _clean(values: pd.Series, lower: bool = False) -> pd.Series:
    """Stripped (and optionally lower-cased) text, computed once per distinct value.

    Export columns hold few distinct values (true/false, 25 question numbers, four method
    names, one id per participant), so factorising first turns millions of per-row
    Python string operations into a hash pass plus a few thousand string operations.
    """
    codes, uniques = pd.factorize(values.astype(str), use_na_sentinel=False)
    cleaned = pd.Index(uniques, dtype=object).str.strip()
    if lower:
        cleaned = cleaned.str.lower()
    return pd.Series(np.asarray(cleaned, dtype=object)[codes], index=values.index)


def _per_distinct(values: pd.Series):
    """(codes, distinct stripped values) of a text column."""
    codes, uniques = pd.factorize(values.astype(str), use_na_sentinel=False)
    return codes, pd.Index(uniques, dtype=object).str.strip()


def _parse_bool(values: pd.Series, column: str, required: np.ndarray) -> np.ndarray:
    """true/false, True/False, 1/0 -> bool; empty allowed only where not ``required``."""
    codes, uniques = _per_distinct(values)
    text = uniques.str.lower()
    is_true = text.isin(_TRUE)[codes]
    is_false = text.isin(_FALSE)[codes]
    empty = (text == "")[codes]
    bad = ~(is_true | is_false | empty) | (empty & required)
    if bad.any():
        example = values.to_numpy()[np.flatnonzero(bad)[0]]
        what = "empty" if example.strip() == "" else f"{example!r}"
        raise VotesError(
            f"column {column!r} must be true/false (or 1/0): {bad.sum()} row(s) are not, "
            f"e.g. {what} on line {_row_numbers(bad)}"
        )
    return is_true


def _parse_int(
    values: pd.Series,
    column: str,
    required: np.ndarray,
    lo: int | None = None,
    hi: int | None = None,
) -> pd.Series:
    codes, uniques = _per_distinct(values)
    numbers_u = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    empty_u = np.asarray(uniques == "")
    with np.errstate(invalid="ignore"):
        ok_u = np.isfinite(numbers_u) & (np.mod(numbers_u, 1) == 0)
        if lo is not None:
            ok_u &= numbers_u >= lo
        if hi is not None:
            ok_u &= numbers_u <= hi
    empty, ok = empty_u[codes], ok_u[codes]
    bad = (~empty & ~ok) | (empty & required)
    if bad.any():
        example = values.to_numpy()[np.flatnonzero(bad)[0]]
        span = "" if lo is None else f" in {lo}..{hi}" if hi is not None else f" >= {lo}"
        what = "empty" if example.strip() == "" else f"{example!r}"
        raise VotesError(
            f"column {column!r} must hold whole numbers{span}: {bad.sum()} row(s) do not, "
            f"e.g. {what} on line {_row_numbers(bad)}"
        )
    numbers = np.where(empty, np.nan, numbers_u[codes])
    return pd.Series(numbers, index=values.index).astype("Int64")


def validate_votes(
    raw: pd.DataFrame,
    design: SurveyCounts | None = None,
    source: str = "votes",
    methods: Sequence[str] | None = None,
) -> Votes:
    """Type and check an export table; raise :class:`VotesError` on anything unusable.

    ``methods``: the study's methods, in the order of every table and plot; None reads
    them from the data (:func:`infer_methods`).  ``design``: one complete survey; None
    reads it from the data (:func:`infer_design`), which for the paper's four methods is
    the paper's 20 + 5.

    Errors (the analysis would be wrong): missing columns, a method name outside
    ``methods``, fewer than two methods, a real question without a chosen method, an
    attention check without a pass/fail result, unparseable numbers or booleans, the
    same question answered twice by one participant, a participant with more answers (or
    more of either kind) than the survey has, a participant flagged completed by the
    server with answers missing, and an export mixing several studies.  Warnings (kept
    in :attr:`Votes.warnings`): things that are ignored by design but worth a reader's
    eye.
    """
    check_columns(raw, source)
    raw = raw.reset_index(drop=True).astype(object)
    raw = raw.where(raw.notna(), "").astype(str)  # a DataFrame's missing values read as empty
    warnings: list[str] = []
    everywhere = np.ones(len(raw), dtype=bool)

    participant = _clean(raw["participant_id"])
    if (participant == "").any():
        bad = (participant == "").to_numpy()
        raise VotesError(f"{bad.sum()} row(s) have no participant_id (line {_row_numbers(bad)})")
    _check_single(raw, source)

    is_check = _parse_bool(raw["is_attention_check"], "is_attention_check", everywhere)
    real = ~is_check
    question = _parse_int(raw["question_index"], "question_index", everywhere, lo=0)
    digit = _parse_int(raw["digit"], "digit", real, lo=0)
    method = _chosen_methods(raw, real, warnings)
    methods, methods_source = _resolve_methods(raw, real, method, methods, warnings)
    passed = _parse_bool(raw["passed"], "passed", is_check) & is_check
    position, options, response_ms, completed = _optional_columns(
        raw, real, method, methods, warnings
    )
    table = pd.DataFrame(
        {
            "participant_id": participant,
            "question_index": question.astype("int64"),
            "is_attention_check": is_check,
            "digit": digit,
            "chosen_method": method,
            "passed": passed,
            "position": position,
            "options": options,
            "response_ms": response_ms,
            "completed": completed,
        }
    )
    has = {c: c in raw.columns and _has_values(raw[c]) for c in _OPTIONAL}
    given = design is not None
    design_source = "given" if given else "paper" if is_replication(methods) else "inferred"
    design = design or infer_design(table, methods, has["completed"])
    _check_classes(table, design)
    _check_duplicates(table)
    _check_structure(table, design, has["completed"])
    warnings += _check_server_counts(raw, table)
    return Votes(
        table,
        has["position"],
        has["completed"],
        design,
        source,
        warnings,
        has["options"],
        has["response_ms"],
        methods,
        methods_source,
        design_source,
    )


_OPTIONAL = ("position", "options", "response_ms", "completed")


def is_replication(methods: Sequence[str]) -> bool:
    """Whether these are the paper's four methods (in any order): its MNIST replication."""
    return sorted(methods) == sorted(METHODS)


def order_methods(names) -> tuple[str, ...]:
    """The paper's methods first in the paper's order, then any others alphabetically:
    one fixed order whatever order the rows come in, so two exports of the same study
    give the same tables."""
    names = set(names)
    return tuple(m for m in METHODS if m in names) + tuple(sorted(names - set(METHODS)))


def infer_methods(chosen: set[str], shown: set[str] | None) -> tuple[tuple[str, ...], str]:
    """The study's methods read from the data, and which column they were read from.

    * with an ``options`` column (``shown``: every name it lists on a real question):
      those names, since every question shows every method;
    * without one, the distinct ``chosen`` methods of real questions; when all of them
      are among the paper's four, the paper's four (the MNIST replication, where a
      method nobody chose was still on the screen and keeps its zero votes).

    Ordered by :func:`order_methods`.  Without options a method nobody chose cannot be
    seen and a misspelt name counts as a method: the caller can pass the methods.
    """
    if shown is not None:
        return order_methods(shown), "options"
    if chosen <= set(METHODS):
        return METHODS, "paper"
    return order_methods(chosen), "chosen_method"


def infer_design(
    table: pd.DataFrame, methods: Sequence[str], has_completed: bool = False
) -> SurveyCounts:
    """The survey one complete participant answered, read from the typed answers.

    The paper's four methods mean the paper's survey (20 real questions, 5 checks,
    digits 0-9), so its exports keep every structural check.  Any other study's survey
    is the most common (real questions, checks) count per participant, among those the
    server marked completed when the export says so: complete surveys all share one
    count while drop-outs scatter below it (a tie goes to the longer survey, so a
    participant with more answers than the survey is still caught).  Its classes are
    not bounded.
    """
    if is_replication(methods):
        return SurveyCounts()
    per = table.groupby("participant_id", sort=False).agg(
        checks=("is_attention_check", "sum"),
        answers=("is_attention_check", "size"),
        completed=("completed", "max"),
    )
    if has_completed and per["completed"].fillna(False).astype(bool).any():
        per = per[per["completed"].fillna(False).astype(bool)]
    per["real"] = per["answers"] - per["checks"]
    tally = per.groupby(["answers", "real", "checks"]).size().reset_index(name="n")
    best = tally.sort_values(["n", "answers", "real"], ascending=False).iloc[0]
    return SurveyCounts(int(best["real"]), int(best["checks"]), classes=None)


def check_columns(
    raw: pd.DataFrame, source: str, required=REQUIRED_COLUMNS, error: type = VotesError
) -> None:
    """An export's header and rows, before any value is read: every ``required`` column,
    no column twice, at least one row; else ``error`` naming the file."""
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise error(
            f"{source} lacks required column(s) {', '.join(missing)} (has: "
            f"{', '.join(map(str, raw.columns)) or 'none'})"
        )
    if raw.columns.duplicated().any():
        dup = sorted(set(raw.columns[raw.columns.duplicated()]))
        raise error(f"{source} has duplicated column(s) {', '.join(dup)}")
    if len(raw) == 0:
        raise error(f"{source} has a header but no answers")


def _check_single(raw: pd.DataFrame, source: str) -> None:
    for column in ("study", "mode"):
        values = _distinct(raw, column)
        if len(values) > 1:
            shown = ", ".join(map(repr, sorted(values)[:5]))
            raise VotesError(
                f"{source} mixes {len(values)} {column} values ({shown}); analyse one at a "
                f"time with --{column}"
            )


def _chosen_methods(raw: pd.DataFrame, real: np.ndarray, warnings: list[str]) -> pd.Series:
    """Lower-cased chosen methods of real questions ("" on checks)."""
    method = _clean(raw["chosen_method"], lower=True)
    no_choice = real & (method == "").to_numpy()
    if no_choice.any():
        raise VotesError(
            f"{no_choice.sum()} real-question row(s) have no chosen_method "
            f"(line {_row_numbers(no_choice)})"
        )
    if (~real & (method != "").to_numpy()).any():
        warnings.append(
            "some attention-check rows carry a chosen_method; attention-check answers are "
            "never counted as votes, so it was ignored"
        )
    return method.where(real, "")


def _resolve_methods(raw, real, method, methods, warnings) -> tuple[tuple[str, ...], str]:
    """The given methods (checked) or the inferred ones; every chosen name among them."""
    if methods is not None:
        resolved, origin = _given_methods(methods), "given"
    else:
        chosen = set(method[real]) - {""}
        resolved, origin = infer_methods(chosen, _shown_methods(raw, real))
        if origin == "chosen_method":
            warnings.append(
                f"no options column: the methods were taken from the chosen ones "
                f"({', '.join(resolved)}); a method nobody chose is missing and a misspelt "
                "name counts as a method, so state them (--methods) if in doubt"
            )
    if len(resolved) < 2:
        raise VotesError(
            f"the analysis compares at least two methods; the data show only {resolved[0]!r}"
        )
    unknown = real & ~method.isin(resolved).to_numpy()
    if unknown.any():
        names = pd.unique(raw["chosen_method"].to_numpy()[unknown])
        shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        raise VotesError(
            f"unknown method name(s) {shown} in chosen_method ({unknown.sum()} row(s), "
            f"e.g. line {_row_numbers(unknown, 1)}); expected one of {', '.join(resolved)}"
        )
    return resolved, origin


def _given_methods(methods: Sequence[str]) -> tuple[str, ...]:
    names = tuple(str(m).strip().lower() for m in methods)
    if not names or "" in names or any("|" in m for m in names):
        raise VotesError(f"methods must be non-empty names without '|', got {list(methods)}")
    if len(set(names)) != len(names):
        raise VotesError(f"methods must be distinct, got {', '.join(names)}")
    return names


def _shown_methods(raw: pd.DataFrame, real: np.ndarray) -> set[str] | None:
    """Every name the options column lists on a real question (None without options)."""
    if "options" not in raw.columns or not _has_values(raw["options"]):
        return None
    _, uniques = _per_distinct(raw["options"].loc[real])
    return {m for text in uniques.str.lower() for m in text.split("|")} - {""}


def _optional_columns(raw, real, method, methods, warnings):
    """position, options, response_ms and completed, typed (missing where absent)."""
    n_rows = len(raw)
    position = pd.Series(pd.NA, index=raw.index, dtype="Int64")
    if "position" in raw.columns and _has_values(raw["position"]):
        position = _parse_slots(raw["position"], len(methods))
        unknown_slot = real & position.isna().to_numpy()
        if unknown_slot.any():
            warnings.append(
                f"{unknown_slot.sum()} real answer(s) have no position; the position-bias "
                "check uses the answers that have one"
            )
    options = pd.Series("", index=raw.index, dtype=object)
    if "options" in raw.columns and _has_values(raw["options"]):
        if position.isna().all():
            raise VotesError(
                "the export has an options column but no position column: the chosen slot "
                "is needed to read a choice among the options"
            )
        options = _parse_options(raw["options"], real, method, position, methods)
    response_ms = pd.Series(pd.NA, index=raw.index, dtype="Int64")
    if "response_ms" in raw.columns and _has_values(raw["response_ms"]):
        response_ms = _parse_int(raw["response_ms"], "response_ms", np.zeros(n_rows, bool), lo=0)
    completed = pd.Series(pd.NA, index=raw.index, dtype="boolean")
    if "completed" in raw.columns and _has_values(raw["completed"]):
        values = _parse_bool(raw["completed"], "completed", np.ones(n_rows, dtype=bool))
        completed = pd.Series(values, index=raw.index, dtype="boolean")
    return position, options, response_ms, completed


def _check_classes(table: pd.DataFrame, design: SurveyCounts) -> None:
    if design.classes is None:
        return
    bad = (table["digit"] >= design.classes).fillna(False).to_numpy()
    if bad.any():
        example = table["digit"].to_numpy()[np.flatnonzero(bad)[0]]
        raise VotesError(
            f"column 'digit' must hold whole numbers in 0..{design.classes - 1} (the "
            f"survey's {design.classes} classes): {bad.sum()} row(s) do not, e.g. "
            f"'{example}' on line {_row_numbers(bad)}"
        )


def _parse_options(
    values: pd.Series,
    real: np.ndarray,
    method: pd.Series,
    position: pd.Series,
    methods: Sequence[str],
) -> pd.Series:
    """The screen order of each real question: every method once, and the chosen slot
    showing the chosen method (anything else means the row was edited or mis-joined)."""
    k = len(methods)
    codes, uniques = _per_distinct(values)
    lowered = uniques.str.lower()
    parts = [text.split("|") if text else [] for text in lowered]
    valid_u = np.array([sorted(p) == sorted(methods) for p in parts], dtype=bool)
    bad = real & ~valid_u[codes]
    if bad.any():
        example = values.to_numpy()[np.flatnonzero(bad)[0]]
        raise VotesError(
            f"column 'options' must list the {k} methods in screen order joined by "
            f"'|' (e.g. {'|'.join(methods)}): {bad.sum()} real-question row(s) do not, e.g. "
            f"{example!r} on line {_row_numbers(bad)}"
        )
    table = np.array([p if ok else [""] * k for p, ok in zip(parts, valid_u, strict=True)])
    slot = position.fillna(1).to_numpy(dtype=np.int64) - 1
    shown = table[codes, np.clip(slot, 0, k - 1)]
    mismatch = real & position.notna().to_numpy() & (shown != method.to_numpy())
    if mismatch.any():
        i = np.flatnonzero(mismatch)[0]
        raise VotesError(
            f"{mismatch.sum()} real-question row(s) chose a slot that shows another method "
            f"than chosen_method, e.g. slot {slot[i] + 1} of {values.iloc[i]!r} is not "
            f"{method.iloc[i]!r} on line {_row_numbers(mismatch)}"
        )
    cleaned = pd.Series(np.asarray(lowered, dtype=object)[codes], index=values.index)
    return cleaned.where(real, "")


def _parse_slots(values: pd.Series, n_slots: int = N_SLOTS) -> pd.Series:
    """Screen slot of the chosen option as 1..n_slots (left to right).

    The study server writes 1-k; a 0-(k-1) numbering is accepted too and shifted,
    recognised by the presence of a 0 (a table holding both 0 and k is refused as
    ambiguous).
    """
    slots = _parse_int(values, "position", np.zeros(len(values), bool), 0, n_slots)
    present = slots.dropna()
    if (present == 0).any() and (present == n_slots).any():
        raise VotesError(
            f"column 'position' holds both 0 and {n_slots}: neither 1-{n_slots} nor "
            f"0-{n_slots - 1} screen slots"
        )
    return slots + 1 if (present == 0).any() else slots


def _has_values(values: pd.Series) -> bool:
    return bool((_per_distinct(values)[1] != "").any())


def _distinct(raw: pd.DataFrame, column: str) -> set[str]:
    if column not in raw.columns:
        return set()
    return set(_per_distinct(raw[column])[1]) - {""}


def _check_server_counts(raw: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """The server's own per-participant ``checks_passed`` column, when present, must agree
    with the pass/fail rows; a disagreement means an edited or truncated file."""
    if "checks_passed" not in raw.columns or not _has_values(raw["checks_passed"]):
        return []
    codes, uniques = _per_distinct(raw["checks_passed"])
    stated = pd.Series(
        pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").to_numpy()[codes],
        index=raw.index,
    )
    frame = pd.DataFrame(
        {"pid": table["participant_id"], "stated": stated, "passed": table["passed"]}
    )
    per = frame.groupby("pid", sort=False).agg(stated=("stated", "max"), counted=("passed", "sum"))
    bad = per[per["stated"].notna() & (per["stated"] != per["counted"])]
    if bad.empty:
        return []
    return [
        f"the export's checks_passed column disagrees with its pass/fail rows for {len(bad)} "
        f"participant(s) (e.g. {bad.index[0]!r}: column says {int(bad['stated'].iloc[0])}, "
        f"rows show {int(bad['counted'].iloc[0])}); the analysis uses the rows"
    ]


def _check_duplicates(table: pd.DataFrame) -> None:
    dup = table.duplicated(["participant_id", "question_index"], keep=False).to_numpy()
    if dup.any():
        first = table.loc[dup].iloc[0]
        n_pairs = table.loc[dup, ["participant_id", "question_index"]].drop_duplicates().shape[0]
        raise VotesError(
            f"duplicated answers: {n_pairs} (participant, question) pair(s) answered more "
            f"than once, e.g. participant {first.participant_id!r} question "
            f"{first.question_index} (lines {_row_numbers(dup)})"
        )


def _check_structure(table: pd.DataFrame, design: SurveyCounts, has_completed: bool) -> None:
    """No participant may have more answers than the survey, nor a contradictory flag."""
    per = table.groupby("participant_id", sort=False).agg(
        checks=("is_attention_check", "sum"),
        answers=("is_attention_check", "size"),
    )
    per["real"] = per["answers"] - per["checks"]
    over = (per["real"] > design.real_questions) | (per["checks"] > design.attention_checks)
    too_many = per[over]
    if len(too_many):
        pid, row = next(iter(too_many.iterrows()))
        raise VotesError(
            f"{len(too_many)} participant(s) have more answers than the survey has "
            f"({design.real_questions} real questions + {design.attention_checks} attention "
            f"checks), e.g. {pid!r} with {row.real} real answers and {row.checks} checks"
        )
    if has_completed:
        flags = table.groupby("participant_id", sort=False)["completed"].agg(["min", "max"])
        mixed = flags[flags["min"] != flags["max"]]
        if len(mixed):
            raise VotesError(
                f"{len(mixed)} participant(s) have contradictory 'completed' values across "
                f"their rows, e.g. {mixed.index[0]!r}"
            )
        claimed = flags["max"].astype(bool) & (per["answers"] < design.answers)
        if claimed.any():
            pid = claimed.index[claimed.to_numpy()][0]
            raise VotesError(
                f"{int(claimed.sum())} participant(s) are marked completed but have fewer "
                f"than {design.answers} answers, e.g. {pid!r} with {per.loc[pid, 'answers']}"
            )
