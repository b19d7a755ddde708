"""Exports (votes CSV, participants CSV) and the progress figures on the admin page.

Votes CSV: one row per stored answer.  The first six columns are the contract read by
``normlime analyze`` (the column lists live in :mod:`explainers.votes_schema`)::

    participant_id, question_index, is_attention_check, digit, chosen_method, passed

``chosen_method`` is one of the survey's methods (MNIST: normlime, lime, smoothgrad,
vargrad) for real questions and empty for attention checks; ``passed`` is true/false for
attention checks and empty for real questions.  Extra columns: ``position`` (1-4 for
MNIST, up to the survey's option count, the chosen option's screen position, left to
right), ``options`` (a real question's methods in screen order, left to right, joined by
``|``, e.g. ``lime|normlime|vargrad|smoothgrad``; empty for attention checks),
``response_ms``, ``images_ms`` (ms from the page's request until all its images had loaded,
as the page reported; empty when it did not), ``shown_at``, ``answered_at`` (ISO 8601
UTC), ``study``, ``mode``,
``adapter``, ``completed`` (true when the participant answered all their items:
25 in the MNIST study), ``checks_passed`` (that participant's passed attention checks).
``digit`` is the asked class's index in studies beyond MNIST.

Debug and sandbox runs are test runs: they are left out unless ``include_debug``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import statistics
from collections.abc import Iterator
from itertools import groupby
from operator import attrgetter

from sqlalchemy import and_, select

from explainers.votes_schema import PARTICIPANT_COLUMNS, RESPONSE_COLUMNS, VOTE_COLUMNS
from explainers.votes_schema import pass_threshold as default_pass_threshold

from .models import Item, Participant, Response, Study, as_utc
from .survey import SurveyDesign

__all__ = [
    "VOTE_COLUMNS",
    "PARTICIPANT_COLUMNS",
    "PASS_THRESHOLD",
    "pass_threshold",
    "vote_rows",
    "response_rows",
    "RESPONSE_COLUMNS",
    "participant_rows",
    "write_csv",
    "csv_text",
    "study_progress",
    "quality_rows",
    "FAST_FRACTION",
]

#: the paper keeps surveys passing at least 4 of the 5 attention checks
PASS_THRESHOLD = 4


def pass_threshold(design: SurveyDesign) -> int:
    """The paper's rule for any number of checks: every check but one right (4 of 5)."""
    return default_pass_threshold(design.attention_checks)


LIVE_MODES = ("live",)

P, S, I, R = (Participant.__table__, Study.__table__, Item.__table__, Response.__table__)


def _iso(value) -> str:
    value = as_utc(value)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z") if value else ""


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _filters(include_debug: bool, study: str | None):
    conds = [P.c.withdrawn_at.is_(None)]  # withdrawn participants are in no export
    if not include_debug:
        conds.append(P.c.mode.in_(LIVE_MODES))
    if study is not None:
        conds.append(S.c.name == study)
    return conds


def vote_rows(conn, *, include_debug: bool = False, study: str | None = None) -> Iterator[dict]:
    """Rows of the votes CSV, participant by participant, in question order."""
    stmt = (
        select(
            P.c.id.label("pid"),
            P.c.public_id,
            P.c.mode,
            P.c.adapter,
            P.c.completed_at,
            S.c.name.label("study"),
            R.c.position,
            R.c.choice,
            R.c.chosen_method,
            R.c.chosen_role,
            R.c.response_ms,
            R.c.images_ms,
            R.c.answered_at,
            I.c.is_check,
            I.c.digit,
            I.c.slots,
            R.c.shown_at,
        )
        .select_from(
            R.join(P, R.c.participant_id == P.c.id)
            .join(S, P.c.study_id == S.c.id)
            .join(I, and_(I.c.participant_id == R.c.participant_id, I.c.position == R.c.position))
        )
        .where(*_filters(include_debug, study))
        .order_by(P.c.id, R.c.position)
    )
    for _pid, rows in groupby(conn.execute(stmt), key=attrgetter("pid")):
        yield from _vote_group(list(rows))


def response_rows(conn, *, include_debug: bool = False, study: str | None = None
                  ) -> Iterator[dict]:  # fmt: skip
    """Rows of ``export-responses``: every answer of the help studies (forward simulation,
    distinction, agreement), participant by participant (columns: RESPONSE_COLUMNS)."""
    stmt = (
        select(
            P.c.id.label("pid"), P.c.public_id, P.c.mode, P.c.adapter, P.c.completed_at,
            P.c.condition, S.c.name.label("study"), S.c.config, R.c.position, R.c.choice,
            R.c.chosen_role, R.c.response_ms, I.c.phase, I.c.stimulus, I.c.slots,
        )
        .select_from(
            R.join(P, R.c.participant_id == P.c.id)
            .join(S, P.c.study_id == S.c.id)
            .join(I, and_(I.c.participant_id == R.c.participant_id, I.c.position == R.c.position))
        )
        .where(*_filters(include_debug, study), I.c.phase.is_not(None))
        .order_by(P.c.id, R.c.position)
    )  # fmt: skip
    for _pid, rows in groupby(conn.execute(stmt), key=attrgetter("pid")):
        yield from _response_group(list(rows))


def _response_group(rows) -> Iterator[dict]:
    passed = sum(1 for r in rows if r.phase == "check" and r.chosen_role == "correct")
    task = json.loads(rows[0].config or "{}").get("design", {}).get("task", "")
    for r in rows:
        roles = {slot[2] for slot in json.loads(r.slots)}
        yield {
            "participant": r.public_id,
            "condition": r.condition,
            "task": task,
            "phase": r.phase,
            "item": r.stimulus,
            "correct": int(r.chosen_role == "correct"),
            # forward: the class index (buttons are numbered from 1); else the option/scale
            "response": r.choice - 1 if task == "forward" else r.choice,
            "rt_ms": "" if r.response_ms is None else r.response_ms,
            "model_correct": "" if r.phase == "check" else int("model-right" in roles),
            "position": r.position,
            "study": r.study,
            "mode": r.mode,
            "adapter": r.adapter,
            "completed": _bool(r.completed_at is not None),
            "checks_passed": passed,
        }


def _vote_group(rows) -> Iterator[dict]:
    passed = sum(1 for r in rows if r.is_check and r.chosen_role == "correct")
    for r in rows:
        yield {
            "participant_id": r.public_id,
            "question_index": r.position,
            "is_attention_check": _bool(r.is_check),
            "digit": r.digit,
            "chosen_method": "" if r.is_check else r.chosen_method,
            "passed": _bool(r.chosen_role == "correct") if r.is_check else "",
            "position": r.choice,
            "options": "" if r.is_check else _screen_order(r.slots),
            "response_ms": "" if r.response_ms is None else r.response_ms,
            "images_ms": "" if r.images_ms is None else r.images_ms,
            "shown_at": _iso(r.shown_at),
            "answered_at": _iso(r.answered_at),
            "study": r.study,
            "mode": r.mode,
            "adapter": r.adapter,
            "completed": _bool(r.completed_at is not None),
            "checks_passed": passed,
        }


def _screen_order(slots_json: str) -> str:
    """The methods of a real question's slots, left to right, joined by ``|``."""
    return "|".join(slot[0] for slot in json.loads(slots_json))


def _answer_counts(conn, conds) -> dict[int, tuple[int, int, int]]:
    """participant id -> (answered, checks answered, checks passed)."""
    stmt = (
        select(R.c.participant_id, R.c.chosen_role)
        .select_from(R.join(P, R.c.participant_id == P.c.id).join(S, P.c.study_id == S.c.id))
        .where(*conds)
    )
    counts: dict[int, list[int]] = {}
    for pid, role in conn.execute(stmt):
        c = counts.setdefault(pid, [0, 0, 0])
        c[0] += 1
        if role != "option":
            c[1] += 1
            c[2] += role == "correct"
    return {k: tuple(v) for k, v in counts.items()}


def participant_rows(
    conn, *, include_debug: bool = False, study: str | None = None
) -> Iterator[dict]:
    conds = _filters(include_debug, study)
    counts = _answer_counts(conn, conds)
    stmt = (
        select(P, S.c.name.label("study"))
        .select_from(P.join(S, P.c.study_id == S.c.id))
        .where(*conds)
        .order_by(P.c.id)
    )
    for r in conn.execute(stmt):
        answered, checks, passed = counts.get(r.id, (0, 0, 0))
        created, done = as_utc(r.created_at), as_utc(r.completed_at)
        yield {
            "participant_id": r.public_id,
            "study": r.study,
            "mode": r.mode,
            "adapter": r.adapter,
            "worker_id": r.raw_worker_id or "",
            "worker_key": r.worker_key or "",
            "assignment_id": r.assignment_id or "",
            "entry_params": r.entry_params,
            "created_at": _iso(r.created_at),
            "started_at": _iso(r.started_at),
            "completed_at": _iso(r.completed_at),
            "completed": _bool(done is not None),
            "answered": answered,
            "checks_answered": checks,
            "checks_passed": passed,
            "duration_s": round((done - created).total_seconds(), 1) if done else "",
            "completion_code": r.completion_code or "",
            "seed": r.seed,
            "survey_version": r.survey_version,
            "bundle_sha256": r.bundle_sha256 or "",
        }


def write_csv(path_or_file, columns: list[str], rows) -> int:
    """Write rows (dicts) as CSV; returns the number of rows."""
    own = isinstance(path_or_file, str | bytes) or hasattr(path_or_file, "__fspath__")
    fh = open(path_or_file, "w", newline="", encoding="utf-8") if own else path_or_file  # noqa: SIM115
    try:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        n = 0
        for row in rows:
            writer.writerow(row)
            n += 1
        return n
    finally:
        if own:
            fh.close()


def csv_text(columns: list[str], rows) -> str:
    buf = io.StringIO()
    write_csv(buf, columns, rows)
    return buf.getvalue()


def study_progress(conn, design: SurveyDesign) -> list[dict]:
    """Per study and mode: started, completed, passing (see :func:`pass_threshold`: 4 of
    the 5 checks for MNIST), median minutes; ``design`` is the loaded bundle's."""
    threshold = pass_threshold(design)
    counts = _answer_counts(conn, [])
    stmt = (
        select(
            S.c.id,
            S.c.name,
            S.c.mode.label("study_mode"),
            S.c.active,
            S.c.public_key,
            P.c.id.label("pid"),
            P.c.mode,
            P.c.created_at,
            P.c.completed_at,
        )
        .select_from(
            S.outerjoin(P, and_(P.c.study_id == S.c.id, P.c.withdrawn_at.is_(None)))
        )
        .order_by(S.c.id)
    )
    studies: dict[int, dict] = {}
    durations: dict[int, list[float]] = {}
    for r in conn.execute(stmt):
        s = studies.setdefault(
            r.id,
            {
                "id": r.id,
                "name": r.name,
                "mode": r.study_mode,
                "active": r.active,
                "public_key": r.public_key,
                "started": 0,
                "completed": 0,
                "passing": 0,
                "answers": 0,
                "median_minutes": None,
            },
        )
        if r.pid is None:
            continue
        answered, _checks, passed = counts.get(r.pid, (0, 0, 0))
        s["started"] += 1
        s["answers"] += answered
        if r.completed_at is not None:
            s["completed"] += 1
            s["passing"] += passed >= threshold
            seconds = (as_utc(r.completed_at) - as_utc(r.created_at)).total_seconds()
            durations.setdefault(r.id, []).append(seconds)
    for sid, values in durations.items():
        studies[sid]["median_minutes"] = round(statistics.median(values) / 60.0, 1)
    for s in studies.values():
        s["items_per_survey"] = design.n_items
        s["checks_per_survey"] = design.attention_checks
        s["pass_threshold"] = threshold
    return list(studies.values())


def utc_stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


#: a participant is flagged as a fast responder when their median time per question is
#: below this fraction of the study's median of participants' medians (the "speeder
#: index" convention of Greszki, Meyer & Schoen 2015, who flag at 30% of the median).
#: A flag for the researcher to look at, never an exclusion (that is analyze's
#: pre-declared --speeder-ms rule).
FAST_FRACTION = 0.3
#: participants with fewer answers than this get no median and no flag
MIN_TIMED_ANSWERS = 3


def quality_rows(conn, study_id: int) -> tuple[list[dict], float | None]:
    """One row per participant of a study, for the admin's quality table, and the study's
    median of participants' median times (ms): participant, adapter, mode, answered,
    completed, checks answered / failed, median time per question (ms), fast flag."""
    stmt = (
        select(P.c.id, P.c.public_id, P.c.adapter, P.c.mode, P.c.completed_at,
               R.c.chosen_role, R.c.response_ms)  # fmt: skip
        .select_from(P.outerjoin(R, R.c.participant_id == P.c.id))
        .where(P.c.study_id == study_id, P.c.withdrawn_at.is_(None))
        .order_by(P.c.id)
    )
    rows: dict[int, dict] = {}
    for r in conn.execute(stmt):
        row = rows.setdefault(r.id, {
            "participant_id": r.public_id, "adapter": r.adapter, "mode": r.mode,
            "completed": r.completed_at is not None, "answered": 0, "checks_answered": 0,
            "checks_failed": 0, "_times": [],
        })  # fmt: skip
        if r.chosen_role is None:
            continue
        row["answered"] += 1
        if r.chosen_role != "option":
            row["checks_answered"] += 1
            row["checks_failed"] += r.chosen_role != "correct"
        if r.response_ms is not None:
            row["_times"].append(int(r.response_ms))
    for row in rows.values():
        times = row.pop("_times")
        row["median_ms"] = statistics.median(times) if len(times) >= MIN_TIMED_ANSWERS else None
    medians = [r["median_ms"] for r in rows.values() if r["median_ms"] is not None]
    study_median = statistics.median(medians) if medians else None
    for row in rows.values():
        row["fast"] = bool(
            study_median and row["median_ms"] is not None
            and row["median_ms"] < FAST_FRACTION * study_median
        )
    return list(rows.values()), study_median
