"""A study's life on Prolific, with every call that moves money or state made exactly once.

``normlime prolific`` (:mod:`study_server.prolific_cli`) drives Prolific's public API
(``https://api.prolific.com``, header ``Authorization: Token <token>``) for one study: create
the draft from the study's configuration, publish, pause, resume, sync the submissions into
``platform_submissions``, approve what ``normlime reconcile`` classes as ``approve``, and pay
bonuses.  No Flask: an SQLAlchemy engine, urllib and the standard library.

**The journal.**  Every call that moves money or state has a row in ``platform_calls``,
committed as ``intent`` *before* the request leaves and updated with the outcome after it
(``done``; ``failed``: Prolific refused, nothing happened; ``unknown``: no usable answer).  A
row that a crash or a lost reply left at ``intent`` or ``unknown`` is settled before anything
is sent again:

================================  =========================================================
``create:<study name>``           Prolific's studies are listed; a draft with our internal
                                  name and entry link is adopted, else the draft is created
``bonus-create:<sha256>``         a bulk bonus that is only set up moves no money: it is set
                                  up again (the orphan costs nothing)
``pay:<bulk bonus id>``           **not idempotent on Prolific** (sent twice, it pays twice):
                                  never resent blindly.  The bulk bonus's state is asked
                                  first: paid, the row is done; clearly unpaid, it is paid;
                                  anything else stops the command and asks the operator
                                  (``--resolve paid|unpaid``)
``approve:<submission id>``,      idempotent on Prolific: sent again (a refusal is checked
``<publish|pause|resume>:...``    against the object's state: already there is done)
================================  =========================================================

**Retries.**  A 429 waits for its Retry-After (at most :data:`MAX_RETRY_AFTER` seconds); 5xx
answers and lost replies are retried with backoff for idempotent calls only; the payment is
never retried by the transport, only through the state check above.

**Secrets.**  The API token is read from ``$PROLIFIC_TOKEN`` only, sent only to the API's
origin (redirects are refused, pagination links to another host are refused) and never
printed, logged or stored.  Raw participant ids are not stored either: synced submissions
keep the study's keyed hash (:func:`study_server.tokens.worker_key`), and the journal keeps a
bonus file's digest, count and total, not its ids.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import tokens
from .models import Participant, PlatformCall, PlatformSubmission, utcnow
from .prolific_api import (
    ATTEMPTS,
    BACKOFF,
    Client,
    NoReply,
    OperatorNeeded,
    PlatformError,
    ProlificError,
    Refused,
    encode,
    retry_after,
)
from .reconcile import FORMATS, PlatformExport, reconcile
from .recruitment import AdapterError, check_url
from .studies import find_study

__all__ = [
    "PLATFORM",
    "DEFAULT_MAX_BONUS",
    "StudyInfo",
    "Journal",
    "Ops",
    "create_body",
    "classify_synced",
    "read_bonus_csv",
]

PLATFORM = "prolific"
#: per participant, in the account's currency, unless ``--max-bonus`` says more
DEFAULT_MAX_BONUS = Decimal("10.00")
MAX_BONUS_FILE = 10 * 2**20

STUDIES = "/api/v1/studies/"
BONUS_SETUP = "/api/v1/submissions/bonus-payments/"
#: verb -> (Prolific's transition action, the study status it leads to)
TRANSITIONS = {
    "publish": ("PUBLISH", "ACTIVE"),
    "pause": ("PAUSE", "PAUSED"),
    "resume": ("START", "ACTIVE"),
}
#: the bulk bonus's state as the state check reads it (see docs/prolific.md: this endpoint
#: is not in Prolific's documentation; without it every unknown payment goes to the operator)
PAID_STATES = frozenset({"PAID", "PAYING"})
UNPAID_STATES = frozenset({"SET_UP"})
AWAITING_REVIEW = "AWAITING REVIEW"
_PID_RE = re.compile(r"[A-Za-z0-9]{1,64}")
_AMOUNT_RE = re.compile(r"\d{1,6}(?:\.\d{1,2})?")
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


# ----------------------------------------------------------------------------- study, journal


@dataclass(frozen=True)
class StudyInfo:
    """What the commands need of a study row, read once."""

    id: int
    name: str
    mode: str
    public_key: str
    secret: str
    adapters: dict
    config: dict

    @classmethod
    def load(cls, engine, name: str) -> StudyInfo:
        with Session(engine) as session:
            s = find_study(session, name)
            return cls(
                s.id,
                s.name,
                s.mode,
                s.public_key,
                s.secret,
                json.loads(s.adapters),
                json.loads(s.config or "{}"),
            )


@dataclass(frozen=True)
class Call:
    key: str
    action: str
    state: str
    remote_id: str | None
    request: dict
    outcome: dict

    @property
    def open(self) -> bool:
        """Sent, or about to be, with no known outcome: settle before sending again."""
        return self.state in ("intent", "unknown")


class Journal:
    """``platform_calls`` of one study: each method is its own committed transaction, so
    an intent is on disk before the request it announces leaves."""

    def __init__(self, engine, study_id: int):
        self.engine, self.study_id = engine, study_id

    def _row(self, session, key: str):
        return session.execute(
            select(PlatformCall).where(PlatformCall.platform == PLATFORM, PlatformCall.key == key)
        ).scalar_one_or_none()

    @staticmethod
    def _call(row) -> Call:
        return Call(
            row.key,
            row.action,
            row.state,
            row.remote_id,
            json.loads(row.request),
            json.loads(row.outcome),
        )

    def get(self, key: str) -> Call | None:
        with Session(self.engine) as session:
            row = self._row(session, key)
            return None if row is None else self._call(row)

    def latest(self, action: str) -> tuple[Call | None, int]:
        """The study's latest call of ``action`` and how many it has had."""
        with Session(self.engine) as session:
            where = (
                PlatformCall.platform == PLATFORM,
                PlatformCall.study_id == self.study_id,
                PlatformCall.action == action,
            )
            n = session.execute(select(func.count()).where(*where)).scalar_one()
            row = (
                session.execute(select(PlatformCall).where(*where).order_by(PlatformCall.id.desc()))
                .scalars()
                .first()
            )
            return (None if row is None else self._call(row)), n

    def intent(self, key: str, action: str, request: dict) -> None:
        now = utcnow()
        try:
            with Session(self.engine) as session, session.begin():
                row = self._row(session, key)
                if row is None:
                    session.add(
                        PlatformCall(
                            study_id=self.study_id,
                            platform=PLATFORM,
                            action=action,
                            key=key,
                            state="intent",
                            request=json.dumps(request, sort_keys=True),
                            outcome="{}",
                            created_at=now,
                            updated_at=now,
                        )
                    )
                else:  # a retry of a call that failed or whose outcome is now known
                    row.state = "intent"
                    row.request = json.dumps(request, sort_keys=True)
                    row.updated_at = now
        except IntegrityError:
            raise ProlificError(
                f"another `normlime prolific` run is making the call {key!r} right now; let "
                "it finish, then run this again"
            ) from None

    def settle(
        self, key: str, state: str, *, remote_id: str | None = None, outcome: dict | None = None
    ) -> None:
        with Session(self.engine) as session, session.begin():
            row = self._row(session, key)
            row.state, row.updated_at = state, utcnow()
            if remote_id is not None:
                row.remote_id = remote_id
            if outcome is not None:
                row.outcome = json.dumps(outcome, sort_keys=True)


# ----------------------------------------------------------------------------- the study body


def entry_url(study: StudyInfo, base_url: str) -> str:
    """The study's Prolific entry link with Prolific's placeholders for the ids the
    ``prolific`` adapter reads (participant, session, study)."""
    try:
        check_url(base_url, what="--base-url", mode=study.mode)
    except AdapterError as exc:
        raise ProlificError(str(exc)) from None
    cfg = study.adapters["prolific"]
    placeholders = [
        (cfg.get("worker_param"), "PROLIFIC_PID"),
        (cfg.get("assignment_param"), "SESSION_ID"),
    ]
    placeholders += [(p, p) for p in cfg.get("record_params", []) if p == "STUDY_ID"]
    query = "&".join(f"{name}={{{{%{value}%}}}}" for name, value in placeholders if name)
    return f"{base_url.rstrip('/')}/s/{study.public_key}/prolific?{query}"


def create_body(study: StudyInfo, base_url: str) -> dict:
    """The draft study Prolific is asked to create, from the study's configuration."""
    where = f"study {study.name!r}"
    prolific = study.config.get("prolific")
    if not prolific:
        raise ProlificError(
            f"{where} has no [prolific] table in its configuration (give "
            "create-study --config with one)"
        )
    minutes = (study.config.get("consent") or {}).get("minutes")
    if not minutes:
        raise ProlificError(
            f"{where} has no [consent] minutes in its configuration (Prolific "
            "needs the estimated completion time)"
        )
    adapter = study.adapters.get("prolific")
    if adapter is None:
        raise ProlificError(f"{where} has no prolific adapter (create it with --adapter prolific)")
    code = adapter.get("completion_code")
    if not code:
        raise ProlificError(
            f"{where} has no Prolific completion code (create it with --completion-code CODE)"
        )
    return {
        "name": prolific["title"],
        "internal_name": prolific.get("internal_name") or study.name,
        "description": prolific["description"],
        "external_study_url": entry_url(study, base_url),
        "prolific_id_option": "url_parameters",
        # MANUALLY_REVIEW: nobody is paid before `normlime prolific approve` has reconciled
        "completion_codes": [
            {"code": code, "code_type": "COMPLETED", "actions": [{"action": "MANUALLY_REVIEW"}]}
        ],
        "estimated_completion_time": minutes,
        "reward": prolific["reward_cents"],
        "total_available_places": prolific["places"],
        "device_compatibility": prolific.get("devices", ["desktop"]),
    }


# ----------------------------------------------------------------------------- synced rows


def _submission(raw: dict) -> dict:
    """One listed submission, checked (Prolific names the participant ``participant_id`` in
    lists and ``participant`` in single objects; the code ``study_code``/``entered_code``)."""
    sid = raw.get("id")
    pid = raw.get("participant_id") or raw.get("participant")
    status = raw.get("status")
    if not (
        isinstance(sid, str)
        and _ID_RE.fullmatch(sid)
        and isinstance(pid, str)
        and pid
        and isinstance(status, str)
        and status
    ):
        raise PlatformError("Prolific listed a submission without id, participant or status")
    code = raw.get("study_code") or raw.get("entered_code")
    return {
        "id": sid,
        "participant": pid,
        "status": status.upper()[:32],
        "code": str(code)[:128] if code else None,
    }


def store_submissions(engine, study: StudyInfo, listed: list[dict]) -> tuple[int, int]:
    """Upsert by submission id; returns (new, updated)."""
    new = updated = 0
    now = utcnow()
    with Session(engine) as session, session.begin():
        ids = [s["id"] for s in listed]
        have = {
            row.submission_id: row
            for row in session.execute(
                select(PlatformSubmission).where(
                    PlatformSubmission.platform == PLATFORM,
                    PlatformSubmission.submission_id.in_(ids),
                )
            ).scalars()
        }
        for s in listed:
            key = tokens.worker_key(study.secret, s["participant"])
            row = have.get(s["id"])
            if row is None:
                session.add(
                    PlatformSubmission(
                        study_id=study.id,
                        platform=PLATFORM,
                        submission_id=s["id"],
                        worker_key=key,
                        status=s["status"],
                        entered_code=s["code"],
                        synced_at=now,
                    )
                )
                new += 1
            else:
                row.worker_key, row.status = key, s["status"]
                row.entered_code, row.synced_at = s["code"], now
                updated += 1
    return new, updated


def synced(session, study: StudyInfo) -> list[PlatformSubmission]:
    return list(
        session.execute(
            select(PlatformSubmission)
            .where(PlatformSubmission.platform == PLATFORM, PlatformSubmission.study_id == study.id)
            .order_by(PlatformSubmission.id)
        ).scalars()
    )


def classify_synced(session, study: StudyInfo) -> dict[str, list[dict]]:
    """``reconcile()``'s classification of the study's synced submissions.

    Synced rows keep the worker's keyed hash, never the raw id, while ``reconcile()`` is
    given raw ids and hashes them itself.  Rather than a second copy of its rules, it runs
    unchanged on a throw-away in-memory copy of the study's participants whose keys are
    hashed once more with a throw-away secret: a synced row's hash then plays the part of a
    raw id (the same person gives the same key), so every rule -- duplicates, returns,
    codes, completed here but not there -- is reconcile()'s own.  Participations stored
    before schema revision 0002 (per-adapter keys) match no synced row; reconcile such a
    study with ``normlime reconcile`` and Prolific's CSV export.
    """
    gone = next(f.gone for f in FORMATS if f.platform == PLATFORM)
    export = PlatformExport(
        PLATFORM,
        [
            {
                "submission": s.submission_id,
                "worker": s.worker_key,
                "status": s.status,
                "code": s.entered_code or "",
            }
            for s in synced(session, study)
        ],
        gone,
    )
    secret = secrets.token_hex(32)
    table = Participant.__table__
    people = [
        {
            **row,
            "worker_key": tokens.worker_key(secret, row["worker_key"])
            if row["worker_key"]
            else None,
        }
        for row in session.execute(select(table).where(table.c.study_id == study.id)).mappings()
    ]
    shadow = create_engine("sqlite://")
    try:
        table.create(shadow)
        if people:
            with shadow.begin() as conn:
                conn.execute(table.insert(), people)
        view = SimpleNamespace(id=study.id, secret=secret, adapters=json.dumps(study.adapters))
        with Session(shadow) as shadow_session:
            return reconcile(shadow_session, view, export)
    finally:
        shadow.dispose()


# ----------------------------------------------------------------------------- bonus file


def read_bonus_csv(path: Path, max_bonus: Decimal) -> list[tuple[str, Decimal]]:
    """``participant id,amount`` lines (an optional header line is skipped); amounts in the
    account's currency with at most two decimals, each above 0 and at most ``max_bonus``."""
    where = str(path)
    try:
        raw = Path(path).read_bytes()
        text = raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise ProlificError(f"bonus file not found: {where}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProlificError(f"{where} cannot be read as UTF-8 text ({exc})") from None
    if len(raw) > MAX_BONUS_FILE:
        raise ProlificError(f"{where} is larger than {MAX_BONUS_FILE // 2**20} MiB")
    out, seen = [], set()
    for n, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if (
            not out
            and n == 1
            and cells[0].lower().replace(" ", "_")
            in ("participant_id", "participant", "prolific_pid", "pid")
        ):
            continue
        out.append(_bonus_line(where, n, cells, max_bonus, seen))
    if not out:
        raise ProlificError(f"{where} holds no bonus")
    return out


def _bonus_line(where, n, cells, max_bonus, seen) -> tuple[str, Decimal]:
    if len(cells) != 2:
        raise ProlificError(f"{where}, line {n}: expected 'participant id,amount'")
    pid, raw = cells
    if not _PID_RE.fullmatch(pid):
        raise ProlificError(f"{where}, line {n}: {pid!r} is not a Prolific participant id")
    if not _AMOUNT_RE.fullmatch(raw):
        raise ProlificError(f"{where}, line {n}: amount {raw!r} is not a number like 1.50")
    try:
        amount = Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ProlificError(f"{where}, line {n}: amount {raw!r} is not a number") from None
    if amount <= 0:
        raise ProlificError(f"{where}, line {n}: a bonus must be above 0")
    if amount > max_bonus:
        raise ProlificError(
            f"{where}, line {n}: bonus {amount:.2f} is over the cap of "
            f"{max_bonus:.2f} (raise --max-bonus if you mean it)"
        )
    if pid in seen:
        raise ProlificError(
            f"{where}, line {n}: participant {pid} appears twice (they would be paid twice)"
        )
    seen.add(pid)
    return pid, amount


# ----------------------------------------------------------------------------- operations


@dataclass
class Ops:
    """The commands on one study.  With ``dry_run`` nothing is sent or stored: each request
    a real run would send is shown (method, path, JSON body) through ``out``."""

    engine: object
    study: StudyInfo
    client: Client | None
    dry_run: bool = False
    out: Callable[[str], None] = print
    journal: Journal = field(init=False)

    def __post_init__(self):
        self.journal = Journal(self.engine, self.study.id)

    def plan(self, method: str, path: str, body: dict | None = None) -> None:
        shown = "" if body is None else " " + encode(body).decode()
        self.out(f"would send: {method} {path}{shown}")

    def _create_key(self) -> str:
        return f"create:{self.study.name}"

    def prolific_id(self) -> str:
        """The Prolific id of the study's draft, from the journal."""
        call = self.journal.get(self._create_key())
        if call is not None and call.state == "done":
            return call.remote_id
        name = self.study.name
        if call is not None and call.open:
            raise ProlificError(
                f"creating study {name!r} on Prolific has an unknown outcome: "
                f"run `normlime prolific create --study {name!r}` again to "
                "settle it"
            )
        raise ProlificError(
            f"study {name!r} is not created on Prolific yet: run `normlime "
            f"prolific create --study {name!r} --base-url URL` first"
        )

    # ------------------------------------------------------------------------- create

    def create(self, base_url: str) -> str | None:
        body = create_body(self.study, base_url)
        key = self._create_key()
        prior = self.journal.get(key)
        if prior is not None and prior.state == "done":
            self.out(f"study {self.study.name!r} is already Prolific study {prior.remote_id}")
            return prior.remote_id
        if self.dry_run:
            if prior is not None and prior.open:
                self.plan("GET", STUDIES)
                self.out(
                    "  (an earlier attempt's outcome is unknown: a draft with this "
                    "internal name and link is adopted if listed, else:)"
                )
            self.plan("POST", STUDIES, body)
            return None
        if prior is not None and prior.open and (found := self._find_draft(body)):
            return self._created(key, found, "adopted the draft an earlier attempt created")
        for _ in range(ATTEMPTS):
            self.journal.intent(key, "study-create", body)
            try:
                reply = self.client.call("POST", STUDIES, body, retry="rate-limit")
            except NoReply:
                reply = None
            if reply is not None and 200 <= reply.status < 300:
                return self._created(key, reply.json().get("id"), "created the draft")
            if reply is not None and 400 <= reply.status < 500 and reply.status != 429:
                self.journal.settle(key, "failed", outcome={"status": reply.status})
                self.client.check("POST", STUDIES, reply)
            # no answer, or 5xx/429: the draft may exist; look before creating again
            self.journal.settle(key, "unknown", outcome={"status": reply.status if reply else None})
            if found := self._find_draft(body):
                return self._created(key, found, "adopted the draft the lost call created")
            self.client.wait(BACKOFF)
        raise PlatformError("Prolific did not create the study; run the command again later")

    def _created(self, key: str, pid, how: str) -> str:
        if not isinstance(pid, str) or not _ID_RE.fullmatch(pid):
            raise PlatformError("Prolific's answer names no valid study id")
        self.journal.settle(key, "done", remote_id=pid, outcome={"id": pid})
        self.out(
            f"{how}: Prolific study {pid} (status UNPUBLISHED; publish it with "
            f"`normlime prolific publish --study {self.study.name!r}`)"
        )
        return pid

    def _find_draft(self, body: dict) -> str | None:
        """The id of the one listed study with our internal name (and, where the list shows
        it, our entry link); None when there is none."""
        found = [
            s.get("id")
            for page in self.client.pages(STUDIES)
            for s in page.get("results") or []
            if s.get("internal_name") == body["internal_name"]
            and s.get("external_study_url", body["external_study_url"])
            == body["external_study_url"]
        ]
        if len(found) > 1:
            raise OperatorNeeded(
                f"{len(found)} Prolific studies are named "
                f"{body['internal_name']!r}: delete the extra drafts in "
                "Prolific's web app, then run this again"
            )
        return found[0] if found else None

    # ------------------------------------------------------------------------- transitions

    def transition(self, verb: str) -> None:
        action, target = TRANSITIONS[verb]
        pid = self.prolific_id()
        path, body = f"/api/v1/studies/{pid}/transition/", {"action": action}
        if self.dry_run:
            self.plan("POST", path, body)
            return
        last, n = self.journal.latest(f"study-{verb}")
        # an unsettled earlier call is the same effect: resend it under its own key
        key = last.key if last is not None and last.open else f"{verb}:{pid}:{n + 1}"
        self.journal.intent(key, f"study-{verb}", body)
        status = self._send_idempotent(key, "POST", path, body, f"/api/v1/studies/{pid}/", target)
        self.out(f"{verb}: Prolific study {pid} is {status}")

    def _send_idempotent(self, key, method, path, body, state_path, target) -> str:
        """Send a journalled idempotent call; a refusal is checked against the object's
        state (a retry whose first attempt was applied is refused by some platforms)."""
        try:
            data = self.client.json(method, path, body)
        except Refused:
            status = self.client.json("GET", state_path).get("status")
            if status != target:
                self.journal.settle(key, "failed", outcome={"status": status})
                raise
            data = {"status": status}
        except (NoReply, PlatformError) as exc:
            self.journal.settle(key, "unknown", outcome={"error": str(exc)})
            if isinstance(exc, NoReply):
                raise PlatformError(f"no answer from Prolific to {method} {path}") from None
            raise
        status = data.get("status", target)
        self.journal.settle(key, "done", outcome={"status": status})
        return status

    # ------------------------------------------------------------------------- sync

    def sync(self) -> Counter | None:
        pid = self.prolific_id()
        path = f"/api/v1/studies/{pid}/submissions/"
        if self.dry_run:
            self.plan("GET", path)
            self.out("  (and each further page its next link names; nothing is stored)")
            return None
        listed, pages = [], 0
        try:
            for page in self.client.pages(path):
                pages += 1
                listed += [_submission(raw) for raw in page.get("results") or []]
        except NoReply:
            raise PlatformError(f"no answer from Prolific to GET {path}") from None
        new, updated = store_submissions(self.engine, self.study, listed)
        counts = Counter(s["status"] for s in listed)
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        self.out(
            f"synced {len(listed)} submissions of Prolific study {pid} ({pages} pages; "
            f"{new} new, {updated} updated): {shown}"
        )
        return counts

    # ------------------------------------------------------------------------- approve

    def approve(self) -> list[str]:
        """Approve the submissions reconcile() classes as ``approve``; returns their ids."""
        self.prolific_id()
        with Session(self.engine) as session:
            rows = {s.submission_id: s.status for s in synced(session, self.study)}
            if not rows:
                raise ProlificError(
                    f"no submissions of study {self.study.name!r} are synced: "
                    "run `normlime prolific sync` first"
                )
            result = classify_synced(session, self.study)
        self.out("reconcile: " + ", ".join(f"{k} {len(v)}" for k, v in result.items()))
        approved, already, waiting = [], 0, []
        for entry in result["approve"]:
            sid = entry["submission_id"]
            prior = self.journal.get(f"approve:{sid}")
            if (prior is not None and prior.state == "done") or rows[sid] == "APPROVED":
                already += 1
            elif rows[sid] != AWAITING_REVIEW:
                waiting.append(sid)  # Prolific approves only submissions awaiting review
            else:
                self._approve_one(sid)
                approved.append(sid)
        verb = "would approve" if self.dry_run else "approved"
        self.out(
            f"{verb} {len(approved)} submissions; {already} already approved; "
            f"{len(waiting)} not awaiting review on Prolific (sync again later)"
        )
        return approved

    def _approve_one(self, sid: str) -> None:
        path, body = f"/api/v1/submissions/{sid}/transition/", {"action": "APPROVE"}
        if self.dry_run:
            self.plan("POST", path, body)
            return
        key = f"approve:{sid}"
        self.journal.intent(key, "submission-approve", body)
        self._send_idempotent(key, "POST", path, body, f"/api/v1/submissions/{sid}/", "APPROVED")

    # ------------------------------------------------------------------------- bonus

    def bonus(
        self, csv_path: Path, *, max_bonus: Decimal = DEFAULT_MAX_BONUS, resolve: str | None = None
    ) -> str | None:
        """Set up (once) and pay (once) the bonuses of a CSV file; returns the bulk id."""
        pid = self.prolific_id()
        rows = read_bonus_csv(csv_path, max_bonus)
        self._check_participants(csv_path, rows)
        # sorted: the same bonuses in another order are the same payment (one journal key)
        lines = "".join(f"{p},{a:.2f}\n" for p, a in sorted(rows))
        body = {"study_id": pid, "csv_bonuses": lines}
        digest = hashlib.sha256(f"{pid}\n{lines}".encode()).hexdigest()
        total = sum(a for _, a in rows)
        summary = {
            "study_id": pid,
            "bonuses": len(rows),
            "total": f"{total:.2f}",
            "csv_sha256": digest,
        }
        key = f"bonus-create:{digest}"
        prior = self.journal.get(key)
        if prior is not None and prior.state == "done":
            bulk = prior.remote_id
            self.out(
                f"bulk bonus {bulk} was set up earlier for this file ({summary['bonuses']} "
                f"bonuses, total {summary['total']})"
            )
        elif self.dry_run:
            self.plan("POST", BONUS_SETUP, body)
            self.plan("POST", "/api/v1/bulk-bonus-payments/<id of that answer>/pay/")
            return None
        else:
            bulk = self._set_up(key, body, summary)
        return self._pay(bulk, resolve)

    def _check_participants(self, csv_path, rows) -> None:
        with Session(self.engine) as session:
            known = {s.worker_key for s in synced(session, self.study)}
        if not known:
            raise ProlificError(
                f"no submissions of study {self.study.name!r} are synced: run "
                "`normlime prolific sync` first"
            )
        for pid, _ in rows:
            if tokens.worker_key(self.study.secret, pid) not in known:
                raise ProlificError(
                    f"{csv_path}: participant {pid} has no submission in "
                    f"study {self.study.name!r} (sync first, or check the id)"
                )

    def _set_up(self, key: str, body: dict, summary: dict) -> str:
        for attempt in range(1, ATTEMPTS + 1):
            # an unsettled earlier set-up moved no money: setting up again is harmless
            self.journal.intent(key, "bonus-create", summary)
            try:
                reply = self.client.call("POST", BONUS_SETUP, body, retry="rate-limit")
            except NoReply:
                reply = None
            if reply is not None and 200 <= reply.status < 300:
                bulk = reply.json().get("id")
                if not isinstance(bulk, str) or not _ID_RE.fullmatch(bulk):
                    raise PlatformError("Prolific's answer names no valid bulk bonus id")
                self.journal.settle(key, "done", remote_id=bulk, outcome={"id": bulk})
                self.out(
                    f"set up bulk bonus {bulk}: {summary['bonuses']} bonuses, total "
                    f"{summary['total']}"
                )
                return bulk
            status = reply.status if reply is not None else None
            if status is not None and 400 <= status < 500 and status != 429:
                self.journal.settle(key, "failed", outcome={"status": status})
                self.client.check("POST", BONUS_SETUP, reply)
            self.journal.settle(key, "unknown", outcome={"status": status})
            self.client.wait(BACKOFF * 2 ** (attempt - 1))
        raise PlatformError("Prolific did not set the bonuses up; run the command again later")

    def _pay(self, bulk: str, resolve: str | None) -> str:
        key, path = f"pay:{bulk}", f"/api/v1/bulk-bonus-payments/{bulk}/pay/"
        prior = self.journal.get(key)
        if resolve and not (prior is not None and prior.open):
            known = "paid" if prior is not None and prior.state == "done" else "not sent yet"
            raise ProlificError(
                f"--resolve is for a payment whose outcome is unknown; bulk bonus {bulk} is {known}"
            )
        if prior is not None and prior.state == "done":
            self.out(f"bulk bonus {bulk} is already paid: nothing sent")
            return bulk
        if prior is not None and prior.open:
            if self.dry_run:
                self.plan("GET", f"/api/v1/bulk-bonus-payments/{bulk}/")
                self.out(
                    f"  (the earlier payment's outcome is unknown: paid, nothing more is "
                    f"sent; clearly unpaid: POST {path})"
                )
                return bulk
            if self._settle_payment(key, bulk, resolve):
                return bulk
        if self.dry_run:
            self.plan("POST", path)
            return bulk
        for _ in range(ATTEMPTS):
            self.journal.intent(key, "bonus-pay", {"bulk_id": bulk})
            try:
                reply = self.client.call("POST", path, retry="never")
            except NoReply:
                reply = None
            if reply is not None and 200 <= reply.status < 300:
                self.journal.settle(key, "done", outcome={"status": reply.status})
                self.out(f"paid bulk bonus {bulk} (Prolific pays it within minutes)")
                return bulk
            status = reply.status if reply is not None else None
            if status is not None and 400 <= status < 500 and status != 429:
                self.journal.settle(key, "failed", outcome={"status": status})
                self.client.check("POST", path, reply)
            # no answer, 5xx or 429: it may have been paid; never resend without knowing
            self.journal.settle(key, "unknown", outcome={"status": status})
            if status == 429:
                self.client.wait(retry_after(reply.headers))
            if self._settle_payment(key, bulk, None):
                return bulk
        raise PlatformError(
            f"bulk bonus {bulk} is still unpaid after {ATTEMPTS} tries; run the command again later"
        )

    def _settle_payment(self, key: str, bulk: str, resolve: str | None) -> bool:
        """Settle a payment of unknown outcome: True when it is paid (the row is done),
        False when it is clearly unpaid (pay it); OperatorNeeded when nobody can tell."""
        verdict = resolve or self._bulk_state(bulk)
        how = "the operator" if resolve else "the bulk bonus's state"
        if verdict == "paid":
            self.journal.settle(key, "done", outcome={"resolved_by": how})
            self.out(
                f"bulk bonus {bulk} was paid by an earlier attempt ({how} says so): nothing sent"
            )
            return True
        if verdict == "unpaid":
            return False
        raise OperatorNeeded(
            f"the payment of bulk bonus {bulk} was sent but its outcome is unknown, and "
            f"Prolific does not say whether it was paid: check the bonuses of Prolific study "
            f"{self.prolific_id()} in Prolific's web app (Submissions), then run this command "
            "again with --resolve paid (nothing more is sent) or --resolve unpaid (it is paid "
            "now)"
        )

    def _bulk_state(self, bulk: str) -> str | None:
        """The bulk bonus's state as a verdict: paid, unpaid, or None (cannot be told)."""
        try:
            reply = self.client.call("GET", f"/api/v1/bulk-bonus-payments/{bulk}/")
            status = str(reply.json().get("status", "")).upper() if reply.status == 200 else ""
        except (NoReply, PlatformError):
            return None
        if status in PAID_STATES:
            return "paid"
        return "unpaid" if status in UNPAID_STATES else None
