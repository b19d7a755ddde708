"""Participant state in the database: creating a participation, progress, answers.

Progress is always derived from the database.  Items are answered strictly in order: item
1 is shown once the participant has started, item k+1 in the reply that stores the answer
to item k, and only a shown item can be answered.  So the answered items are always a
prefix, the current item is ``count(responses) + 1``, and an item was first shown when the
previous one was answered (or at the start); that time is stored with the answer
(``responses.shown_at``) and needs no extra write on the vote path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import current_app, g
from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import fields, tokens
from .models import Event, Item, Participant, Response, Study, as_utc, db, utcnow
from .recruitment import Entry
from .survey import CHECK_PICTURE, SurveyDesign, design_survey, new_seed

__all__ = [
    "Refused",
    "ParticipantRow",
    "load_participant",
    "find_by_worker",
    "find_by_nonce",
    "create_participant",
    "current_item",
    "start",
    "record_answer",
    "log_event",
    "mode_of",
    "remember_study_mode",
]

P = Participant.__table__
S = Study.__table__
I = Item.__table__  # noqa: E741
R = Response.__table__
E = Event.__table__

_PCOLS = (
    P.c.id,
    P.c.token,
    P.c.study_id,
    P.c.public_id,
    P.c.adapter,
    P.c.assignment_id,
    P.c.submit_to,
    P.c.mode,
    P.c.started_at,
    P.c.completed_at,
    P.c.completion_code,
    P.c.worker_key,
    P.c.withdrawn_at,
    S.c.secret,
    S.c.adapters,
    P.c.condition,
    S.c.config,
)


# The statements of the hot paths are built once: building a SQLAlchemy statement costs
# more CPU than running it (benchmarks/load.py).  Values travel as bound parameters.
_PREV = R.alias("prev")
_ITEM_COLS = (
    I.c.id.label("item_id"), I.c.position, I.c.is_check, I.c.digit, I.c.slots, I.c.phase,
)  # fmt: skip
_BY_TOKEN = (
    select(*_PCOLS).join_from(P, S, P.c.study_id == S.c.id).where(P.c.token == bindparam("token"))
)
_ANSWERED_COUNT = select(func.count()).select_from(R).where(R.c.participant_id == bindparam("pid"))
_ITEM_AT = select(*_ITEM_COLS).where(
    I.c.participant_id == bindparam("pid"), I.c.position == bindparam("pos")
)
_SHOWN_ITEM_AT = (
    select(*_ITEM_COLS, _PREV.c.id.label("prev_id"))
    .select_from(
        I.outerjoin(
            _PREV,
            and_(
                _PREV.c.participant_id == I.c.participant_id,
                _PREV.c.position == bindparam("prev_pos"),
            ),
        )
    )
    .where(I.c.participant_id == bindparam("pid"), I.c.position == bindparam("pos"))
)
#: the vote path's only read: participant, study, the answered item with its response (if
#: any), the next item, and when the previous item was answered (= this one was shown)
_FOR_ANSWER = (
    select(*_PCOLS, *_ITEM_COLS, R.c.choice, _PREV.c.answered_at.label("prev_answered_at"))
    .select_from(
        P.join(S, P.c.study_id == S.c.id)
        .join(I, I.c.participant_id == P.c.id)
        # join on the item's columns so both columns of uq_response_item are used
        .outerjoin(
            R, and_(R.c.participant_id == I.c.participant_id, R.c.position == I.c.position)
        )
        .outerjoin(
            _PREV,
            and_(_PREV.c.participant_id == P.c.id, _PREV.c.position == bindparam("prev_pos")),
        )
    )
    .where(
        P.c.token == bindparam("token"),
        I.c.position.between(bindparam("pos"), bindparam("next_pos")),
    )
    .order_by(I.c.position)
)
_EXISTING_CHOICE = select(R.c.choice).where(
    R.c.participant_id == bindparam("pid"), R.c.position == bindparam("pos")
)
_INSERT_ONCE: dict[str, object] = {}


def _insert_once_stmt(dialect: str):
    """INSERT .. ON CONFLICT DO NOTHING RETURNING id, built once per dialect."""
    stmt = _INSERT_ONCE.get(dialect)
    if stmt is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = _INSERT_ONCE[dialect] = (
            dialect_insert(R)
            .on_conflict_do_nothing(index_elements=["participant_id", "position"])
            .returning(R.c.id)
        )
    return stmt


def _db():
    """The request's connection: Core statements skip the ORM session's per-statement
    work (its transaction is still the session's, committed once per request)."""
    return db.session.connection()


class Refused(Exception):
    """A request that must change nothing; carries the HTTP status, a clear message that
    says what to do next, and the page title."""

    def __init__(self, status: int, message: str, title: str = "Not accepted"):
        super().__init__(message)
        self.status, self.message, self.title = status, message, title


@dataclass
class ParticipantRow:
    id: int
    token: str
    study_id: int
    public_id: str
    adapter: str
    assignment_id: str | None
    submit_to: str | None
    mode: str
    started_at: object
    completed_at: object
    completion_code: str | None
    worker_key: str | None
    withdrawn_at: object
    secret: str
    adapters: str
    #: the between-participant condition (designs that measure help; else None)
    condition: str | None = None
    study_config: str = "{}"

    @classmethod
    def from_row(cls, row) -> ParticipantRow:
        return cls(*row[: len(_PCOLS)])

    @property
    def adapter_config(self) -> dict:
        return json.loads(self.adapters)[self.adapter]


@dataclass
class ItemRow:
    id: int
    position: int
    is_check: bool
    digit: int
    slots: list
    answered_choice: int | None = None
    phase: str | None = None


def log_event(kind: str, *, study_id=None, participant_id=None, ip=None, **detail) -> None:
    _db().execute(
        insert(E).values(
            at=utcnow(),
            kind=kind,
            study_id=study_id,
            participant_id=participant_id,
            ip=ip,
            detail=json.dumps(detail, sort_keys=True, default=str),
        )
    )


_BAD_TOKEN = (
    "This survey link is not valid. Open the study again from the site that sent you, "
    "or use the link you were given on the first page."
)
_WITHDRAWN = (
    "You withdrew from this study and your answers were deleted. "
    "Nothing more is needed from you; thank you."
)


_MODES: dict[str, str] = {}
_MODES_MAX = 50_000


def _remember_mode(key: str, mode: str) -> None:
    if len(_MODES) >= _MODES_MAX:
        _MODES.clear()
    _MODES[key] = mode


def remember_study_mode(public_key: str, mode: str) -> None:
    _remember_mode(f"s:{public_key}", mode)


def mode_of(*, token: str | None = None, study_key: str | None = None) -> str | None:
    """The study mode behind a participant token or study key, for the banner of an error
    page answered before the view ran (a rate limit).  Known keys are remembered per
    process; the database is asked only for a token this installation signed, at most
    once per token and process, so a flood of made-up links costs no query."""
    key = f"t:{token}" if token else f"s:{study_key}"
    if key in _MODES or not token:
        return _MODES.get(key)
    if not tokens.token_is_signed(current_app.config["SECRET_KEY"], token):
        return None
    mode = _db().execute(select(P.c.mode).where(P.c.token == token)).scalar_one_or_none()
    if mode is not None:
        _remember_mode(key, mode)
    return mode


def _checked(row) -> ParticipantRow:
    p = ParticipantRow.from_row(row)
    g.study_mode = p.mode
    if f"t:{p.token}" not in _MODES:
        _remember_mode(f"t:{p.token}", p.mode)
    if p.withdrawn_at is not None:
        raise Refused(410, _WITHDRAWN, "Withdrawn")
    return p


def load_participant(token: str) -> ParticipantRow:
    if not tokens.TOKEN_RE.fullmatch(token or ""):
        raise Refused(404, _BAD_TOKEN, "Link not valid")
    row = _db().execute(_BY_TOKEN, {"token": token}).first()
    if row is None:
        raise Refused(404, _BAD_TOKEN, "Link not valid")
    return _checked(row)


def find_by_worker(study, worker_id: str) -> ParticipantRow | None:
    """The person's participation in the study, whichever adapter they used."""
    keys = tokens.worker_keys(study.secret, worker_id, json.loads(study.adapters))
    row = _db().execute(
        select(*_PCOLS)
        .join_from(P, S, P.c.study_id == S.c.id)
        .where(P.c.study_id == study.id, P.c.worker_key.in_(keys))
        .order_by(P.c.id)
    ).first()
    return _checked(row) if row else None


def find_by_nonce(study_id: int, nonce: str) -> ParticipantRow | None:
    row = _db().execute(
        select(*_PCOLS)
        .join_from(P, S, P.c.study_id == S.c.id)
        .where(P.c.study_id == study_id, P.c.entry_nonce == nonce)
    ).first()
    return _checked(row) if row else None


def update_assignment(p: ParticipantRow, entry: Entry) -> None:
    """An unfinished person who comes back identified finishes on the route that can pay
    them now.

    The rule: until the survey is complete, the participation takes the adapter,
    assignment and submission target of the latest entry through an *identified panel*
    (an adapter whose links always carry the worker id: MTurk, Prolific).  A returning
    MTurk worker may hold a new assignment; a worker who began on MTurk and returns
    through Prolific is doing the Prolific task now and is paid there.  A plain link never
    takes a participation away from a panel (it cannot pay one), and after completion
    nothing moves: the completion page is that of the route the survey was completed
    under.
    """
    if entry.adapter != p.adapter:
        target = json.loads(p.adapters).get(entry.adapter, {})
        if not target.get("worker_required"):
            return
    elif not entry.assignment_id or (entry.assignment_id, entry.submit_to) == (
        p.assignment_id,
        p.submit_to,
    ):
        return
    moved = entry.adapter != p.adapter
    _db().execute(
        update(P)
        .where(P.c.id == p.id, P.c.completed_at.is_(None))
        .values(adapter=entry.adapter, assignment_id=entry.assignment_id,
                submit_to=entry.submit_to)
    )  # fmt: skip
    log_event(
        "adapter_changed" if moved else "assignment_changed",
        study_id=p.study_id,
        participant_id=p.id,
        old=p.assignment_id,
        new=entry.assignment_id,
        **({"old_adapter": p.adapter, "new_adapter": entry.adapter} if moved else {}),
    )


def create_participant(
    study,
    entry: Entry,
    nonce: str,
    *,
    design: SurveyDesign,
    bundle_sha256: str,
    task=None,
) -> str:
    """Insert a participant and their items (``design`` from their seed); returns the token.

    ``task`` = (TaskDesign, stimuli) for the designs that measure help: the participant is
    assigned a condition and gets that design's items instead.

    Raises IntegrityError when the worker or the entry nonce already has a participation
    (the caller then resolves to the existing one).
    """
    now = utcnow()
    seed = new_seed()
    token = tokens.new_token(current_app.config["SECRET_KEY"])
    condition = None
    if task is not None:
        from .tasks import assign_condition, build_items

        condition = assign_condition(_db(), study.id, study.secret, task[0].conditions)
    worker_key = tokens.worker_key(study.secret, entry.worker_id) if entry.worker_id else None
    result = _db().execute(
        insert(P).values(
            study_id=study.id,
            public_id=tokens.new_public_id(),
            token=token,
            worker_key=worker_key,
            raw_worker_id=entry.worker_id if study.raw_worker_ids else None,
            adapter=entry.adapter,
            entry_nonce=nonce,
            assignment_id=entry.assignment_id,
            submit_to=entry.submit_to,
            entry_params=json.dumps(entry.extra, sort_keys=True),
            mode=study.mode,
            seed=seed,
            survey_version=0 if task is not None else design.version,
            bundle_sha256=bundle_sha256,
            created_at=now,
            condition=condition,
        )
    )
    pid = result.inserted_primary_key[0]
    if task is not None:
        rows = [
            {"participant_id": pid, **row, "slots": json.dumps(row["slots"])}
            for row in build_items(task[0], task[1], condition, seed)
        ]
    else:
        rows = [
            {
                "participant_id": pid,
                "position": it.position,
                "is_check": it.is_check,
                "digit": it.digit,
                "slots": json.dumps([s.as_list() for s in it.slots]),
            }
            for it in design_survey(seed, design=design)
        ]
    _db().execute(insert(I), rows)
    log_event(
        "participant_created",
        study_id=study.id,
        participant_id=pid,
        adapter=entry.adapter,
        assignment_id=entry.assignment_id,
        **{f"param.{k}": v for k, v in entry.extra.items()},
    )
    return token


def _item_row(row) -> ItemRow:
    return ItemRow(
        row.item_id,
        row.position,
        row.is_check,
        row.digit,
        json.loads(row.slots),
        getattr(row, "choice", None),
        row.phase,
    )


def answered_count(participant_id: int) -> int:
    return _db().execute(_ANSWERED_COUNT, {"pid": participant_id}).scalar_one()


def current_item(p: ParticipantRow, n_items: int) -> ItemRow | None:
    """The first unanswered of the ``n_items`` items (None when all are answered).
    Reads only."""
    position = answered_count(p.id) + 1
    if position > n_items:
        return None
    row = _db().execute(_ITEM_AT, {"pid": p.id, "pos": position}).one()
    return _item_row(row)


def start(p: ParticipantRow) -> None:
    """The participant has read the instructions: item 1 is shown from now on."""
    if p.started_at is not None:
        return
    now = utcnow()
    _db().execute(
        update(P).where(P.c.id == p.id, P.c.started_at.is_(None)).values(started_at=now)
    )
    log_event("started", study_id=p.study_id, participant_id=p.id)


def load_shown_item(p: ParticipantRow, position: int) -> ItemRow | None:
    """Item ``position`` if it has been shown to the participant (else None)."""
    row = _db().execute(
        _SHOWN_ITEM_AT, {"pid": p.id, "pos": position, "prev_pos": position - 1}
    ).first()
    if row is None:
        return None
    shown = row.prev_id is not None if position > 1 else p.started_at is not None
    return _item_row(row) if shown else None


@dataclass
class AnswerContext:
    participant: ParticipantRow
    item: ItemRow
    next_item: ItemRow | None
    #: when the item was first shown: the answer to the previous item (or the start)
    shown_at: object


def load_for_answer(token: str, position: int) -> AnswerContext:
    """One query: participant, study, the answered item (+ its response), the next item,
    and the time the previous item was answered (= when this one was first shown)."""
    if not tokens.TOKEN_RE.fullmatch(token or ""):
        raise Refused(404, _BAD_TOKEN, "Link not valid")
    params = {
        "token": token,
        "pos": position,
        "next_pos": position + 1,
        "prev_pos": position - 1,
    }
    rows = _db().execute(_FOR_ANSWER, params).all()
    if not rows:
        # a withdrawn participant's items are deleted: say they withdrew (410), not 404
        load_participant(token)
        raise Refused(404, _BAD_TOKEN, "Link not valid")
    p = _checked(rows[0])
    items = {r.position: _item_row(r) for r in rows}
    if position not in items:
        raise Refused(
            404, f"Question {position} is not part of this survey. Reload the page to continue."
        )
    shown = p.started_at if position == 1 else rows[0].prev_answered_at
    return AnswerContext(p, items[position], items.get(position + 1), shown)


def record_answer(
    ctx: AnswerContext, choice: int, *, n_items: int, images_ms: int | None = None
) -> bool:
    """Store the answer (once).  Returns True when this request stored it.

    ``choice`` must be one of the item's options (else FieldError, nothing changes).  The
    same answer again is acknowledged (False); a different answer to an answered item
    raises Refused(409).  Completing the last of the ``n_items`` items marks the
    participation complete in the same transaction.  The vote path is one SELECT, one
    INSERT and the COMMIT.
    """
    fields.within("c", choice, len(ctx.item.slots))
    method, _digit, role = ctx.item.slots[choice - 1]
    return store_answer(ctx, choice, method, role, n_items=n_items, images_ms=images_ms)


def store_answer(
    ctx: AnswerContext, choice: int, method: str, role: str, *, n_items: int,
    images_ms: int | None = None,
) -> bool:  # fmt: skip
    """The insert-once core of :func:`record_answer`, for any design: ``choice`` as given,
    ``method`` and ``role`` stored with it (the chosen map's, or a condition and whether
    the answer met the task's target)."""
    p, item = ctx.participant, ctx.item
    if item.answered_choice is not None:
        return _acknowledge(item, item.answered_choice, choice)
    if p.completed_at is not None:
        raise Refused(409, "This survey is already complete; nothing more can be answered.")
    if ctx.shown_at is None:
        raise Refused(
            409,
            f"Question {item.position} has not been shown to you yet. "
            "Reload the page to see your current question.",
        )
    now = utcnow()
    shown = as_utc(ctx.shown_at)
    values = {
        "participant_id": p.id,
        "position": item.position,
        "choice": choice,
        "chosen_method": method,
        "chosen_role": role,
        "shown_at": shown,
        "answered_at": now,
        "response_ms": max(int((now - shown).total_seconds() * 1000), 0),
        "images_ms": images_ms,
    }
    if not _insert_once(values):
        existing = _db().execute(
            _EXISTING_CHOICE, {"pid": p.id, "pos": item.position}
        ).scalar_one()
        return _acknowledge(item, existing, choice)
    if ctx.next_item is None:
        _complete(p, now, n_items)
    return True


def _acknowledge(item: ItemRow, stored: int, choice: int) -> bool:
    if stored == choice:
        return False
    raise Refused(
        409,
        f"You already answered question {item.position} (option {stored}); "
        "answers cannot be changed. Reload the page to continue with the next question.",
    )


def _insert_once(values: dict) -> bool:
    dialect = db.session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        # rowcount is -1 for INSERT .. RETURNING with psycopg: count the returned rows
        return _db().execute(_insert_once_stmt(dialect), values).first() is not None
    try:
        with db.session.begin_nested():
            _db().execute(insert(R), values)
        return True
    except IntegrityError:
        return False


def _complete(p: ParticipantRow, now, n_items: int) -> None:
    if answered_count(p.id) != n_items:  # defensive: the prefix rule makes this impossible
        raise Refused(409, "The survey cannot be completed before every question is answered.")
    code = tokens.completion_code(p.secret, p.public_id)
    _db().execute(
        update(P)
        .where(P.c.id == p.id, P.c.completed_at.is_(None))
        .values(completed_at=now, completion_code=code)
    )
    p.completed_at, p.completion_code = now, code
    log_event("completed", study_id=p.study_id, participant_id=p.id)


def check_open_surveys(session, design: SurveyDesign) -> None:
    """Refuse to serve a bundle whose survey design differs from that of surveys still open.

    An open survey's items were drawn from the design it started under; under another
    design its progress, answer bounds and completion would be wrong.  Checked on start-up:
    the item count of every open survey, and the options of one open survey's first item.
    """
    from explainers.bundle import BundleError

    # open preference surveys (a help study's items come from the stimuli bundle)
    open_ = and_(Participant.completed_at.is_(None), Participant.withdrawn_at.is_(None),
                 Participant.condition.is_(None))  # fmt: skip
    joined = select(Item.participant_id).join(Participant, Participant.id == Item.participant_id)
    mismatch = session.execute(
        joined.add_columns(func.count(Item.id)).where(open_).group_by(Item.participant_id)
        .having(func.count(Item.id) != design.n_items).limit(1)
    ).first()  # fmt: skip
    first = session.execute(
        select(Item.slots).join(Participant, Participant.id == Item.participant_id)
        .where(open_, Item.position == 1).limit(1)
    ).scalar_one_or_none()  # fmt: skip
    methods = {slot[0] for slot in json.loads(first)} if first is not None else set()
    wrong_options = first is not None and (
        len(json.loads(first)) != design.n_options
        or not methods <= {*design.methods, CHECK_PICTURE}
    )
    if mismatch is not None or wrong_options:
        found = f"{mismatch[1]} items" if mismatch is not None else "other options"
        raise BundleError(
            f"surveys still open in the database have {found}, but this bundle's design has "
            f"{design.n_items} items of {design.n_options} options: serve the bundle they "
            "started with until they are finished or withdrawn"
        )
