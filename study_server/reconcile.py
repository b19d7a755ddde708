"""Reconciliation with the recruitment platform before paying anyone.

``normlime reconcile`` reads the platform's own list of submissions and compares it with
the database.  Two formats are recognised from their header:

- Prolific's submissions export (CSV): ``Submission id``/``Participant id``/``Status``/
  ``Completion code`` (the older ``session_id``/``participant_id``/``status``/
  ``entered_code`` names too);
- an MTurk batch-results CSV: ``AssignmentId``/``WorkerId``/``AssignmentStatus`` and the
  completion form's ``Answer.completion_code``.

A platform row is matched to a participant by the keyed hash of its worker id (raw ids
are not needed).  Each is classified:

==========================  ===============================================================
``approve``                 completed here, and the code the platform received is the one
                            this participant was shown
``code_mismatch``           completed here, but another code (or none) reached the platform
``there_not_here``          submitted there, but not completed here (never started, or
                            stopped early)
``returned_or_timed_out``   the platform says the worker returned the task or ran out of
                            time (nothing to pay)
``duplicate``               another row of the same worker came first in the file
``here_not_there``          completed here through this platform's adapter, with no row
                            there (closed the tab before submitting; check with them)
==========================  ===============================================================
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import tokens
from .models import Participant, Study

__all__ = ["ReconcileError", "PlatformExport", "read_platform_export", "reconcile", "CATEGORIES"]

CATEGORIES = (
    "approve",
    "code_mismatch",
    "there_not_here",
    "returned_or_timed_out",
    "duplicate",
    "here_not_there",
)
MAX_BYTES = 200 * 1024 * 1024
P = Participant.__table__


class ReconcileError(ValueError):
    """An unreadable or foreign platform export (one readable line)."""


@dataclass(frozen=True)
class Format:
    platform: str
    submission: tuple[str, ...]
    worker: tuple[str, ...]
    status: tuple[str, ...]
    code: tuple[str, ...]
    #: statuses meaning the worker gave the task back or ran out of time
    gone: frozenset


FORMATS = (
    Format(
        "prolific",
        ("submission id", "session_id"),
        ("participant id", "participant_id"),
        ("status",),
        ("completion code", "entered_code"),
        frozenset({"RETURNED", "TIMED-OUT", "TIMED_OUT"}),
    ),
    Format(
        "mturk",
        ("assignmentid",),
        ("workerid",),
        ("assignmentstatus",),
        ("answer.completion_code",),
        frozenset({"RETURNED", "ABANDONED"}),
    ),
)


@dataclass
class PlatformExport:
    platform: str
    rows: list[dict]  # submission, worker, status, code
    gone: frozenset = frozenset()


def _pick(header: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((header[n] for n in names if n in header), None)


def read_platform_export(path: str | Path) -> PlatformExport:
    path = Path(path)
    if not path.is_file():
        raise ReconcileError(f"platform export not found: {path}")
    raw = path.read_bytes()[: MAX_BYTES + 1]
    if len(raw) > MAX_BYTES:
        raise ReconcileError(f"{path} is larger than {MAX_BYTES // 2**20} MiB")
    if b"\x00" in raw[:4096]:
        raise ReconcileError(f"{path} is not a CSV file (it holds binary data)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReconcileError(f"{path} is not UTF-8 text (export it again as CSV)") from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        fieldnames = reader.fieldnames or []
        records = list(reader)
    except csv.Error as exc:
        raise ReconcileError(f"{path} is not a readable CSV file ({exc})") from None
    header = {name.strip().lower(): name for name in fieldnames if name}
    for fmt in FORMATS:
        cols = [_pick(header, names) for names in (fmt.submission, fmt.worker, fmt.status)]
        if all(cols):
            break
    else:
        shown = ", ".join(fieldnames[:6]) or "none"
        raise ReconcileError(
            f"{path} is neither a Prolific submissions export nor an MTurk batch-results CSV "
            f"(its columns: {shown})"
        )
    sub_col, worker_col, status_col = cols
    code_col = _pick(header, fmt.code)
    rows = []
    for n, rec in enumerate(records, start=2):
        if None in rec:
            raise ReconcileError(f"{path}, line {n}: more fields than the header has")
        worker = (rec.get(worker_col) or "").strip()
        if not worker:
            raise ReconcileError(f"{path}, line {n}: no worker id in column {worker_col!r}")
        rows.append(
            {
                "submission": (rec.get(sub_col) or "").strip(),
                "worker": worker,
                "status": (rec.get(status_col) or "").strip().upper(),
                "code": (rec.get(code_col) or "").strip() if code_col else "",
            }
        )
    return PlatformExport(fmt.platform, rows, fmt.gone)


def _expected_code(adapters: dict, adapter: str, own_code: str | None) -> str | None:
    cfg = adapters.get(adapter, {})
    return cfg.get("completion_code") or own_code


def reconcile(session: Session, study: Study, export: PlatformExport) -> dict[str, list[dict]]:
    """Classify every platform row and every unmatched completion; see the module doc."""
    adapters = json.loads(study.adapters)
    platform_adapters = {
        name
        for name, cfg in adapters.items()
        if (cfg["kind"] == "mturk") == (export.platform == "mturk")
        and (export.platform == "mturk" or name == "prolific")
    }
    people = session.execute(
        select(
            P.c.id,
            P.c.public_id,
            P.c.worker_key,
            P.c.adapter,
            P.c.assignment_id,
            P.c.completed_at,
            P.c.completion_code,
            P.c.withdrawn_at,
        ).where(P.c.study_id == study.id)
    ).all()
    by_key = {p.worker_key: p for p in people if p.worker_key}
    out: dict[str, list[dict]] = {c: [] for c in CATEGORIES}
    seen_workers: set[str] = set()
    matched: set[int] = set()
    for row in export.rows:
        keys = tokens.worker_keys(study.secret, row["worker"], adapters)
        person = next((by_key[k] for k in keys if k in by_key), None)
        entry = {
            "submission_id": row["submission"],
            "worker_id": row["worker"],
            "platform_status": row["status"],
            "platform_code": row["code"],
            "participant_id": person.public_id if person else "",
            "withdrawn": "true" if person and person.withdrawn_at else "false",
        }
        if person is not None:
            matched.add(person.id)
        if row["worker"] in seen_workers:
            out["duplicate"].append({**entry, "reason": "another row of this worker came first"})
            continue
        seen_workers.add(row["worker"])
        if row["status"] in export.gone:
            out["returned_or_timed_out"].append({**entry, "reason": row["status"].lower()})
        elif person is None:
            out["there_not_here"].append({**entry, "reason": "no participation in this study"})
        elif person.completed_at is None:
            out["there_not_here"].append({**entry, "reason": "started here, not completed"})
        else:
            expected = _expected_code(adapters, person.adapter, person.completion_code)
            if expected and tokens.same(row["code"], expected):
                out["approve"].append({**entry, "reason": "completed, code matches"})
            else:
                out["code_mismatch"].append(
                    {**entry, "reason": f"completed here; the platform got {row['code']!r}"}
                )
    for person in people:
        if (
            person.id not in matched
            and person.completed_at is not None
            and person.adapter in platform_adapters
        ):
            out["here_not_there"].append(
                {
                    "submission_id": person.assignment_id or "",
                    "worker_id": "",
                    "platform_status": "",
                    "platform_code": "",
                    "participant_id": person.public_id,
                    "withdrawn": "true" if person.withdrawn_at else "false",
                    "reason": "completed here, no submission in the platform export",
                }
            )
    return out


COLUMNS = [
    "category",
    "submission_id",
    "worker_id",
    "participant_id",
    "platform_status",
    "platform_code",
    "withdrawn",
    "reason",
]


def write_lists(result: dict[str, list[dict]], out_dir: Path) -> dict[str, Path]:
    """approve.csv (the submissions to approve) and investigate.csv (everything else)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"approve": out_dir / "approve.csv", "investigate": out_dir / "investigate.csv"}
    for name, cats in (("approve", ["approve"]), ("investigate", CATEGORIES[1:])):
        with open(paths[name], "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            for cat in cats:
                for entry in result[cat]:
                    writer.writerow({"category": cat, **entry})
    return paths
