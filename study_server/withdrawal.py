"""Withdrawal on request: a participant's answers are deleted, as consent forms promise.

What stays is what a withdrawal must keep to be honoured: the participant row as a
tombstone (``withdrawn_at``; the keyed worker hash, so the same person is not enrolled
again; the assignment id and completion code, so the researcher can still pay for work
done, see ``normlime reconcile``) and an event-log record that names the pseudonymous
participant id, never the raw worker id.  Raw worker ids (``--raw-worker-ids``) and the
recorded entry parameters are cleared.
"""

from __future__ import annotations

import json

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from . import tokens
from .models import Event, Item, Participant, Response, Study, utcnow
from .studies import StudyError

__all__ = ["withdraw"]

P, I, R, E = (t.__table__ for t in (Participant, Item, Response, Event))  # noqa: E741


def _find(session: Session, study: Study, worker_id: str | None, public_id: str | None):
    if worker_id:
        keys = tokens.worker_keys(study.secret, worker_id, json.loads(study.adapters))
        cond = P.c.worker_key.in_(keys)
        what = "that worker id"
    else:
        cond = P.c.public_id == public_id
        what = f"participant id {public_id!r}"
    row = session.execute(
        select(P.c.id, P.c.public_id, P.c.withdrawn_at)
        .where(P.c.study_id == study.id, cond)
        .order_by(P.c.id)
    ).first()
    if row is None:
        raise StudyError(f"study {study.name!r} has no participant with {what}")
    return row


def withdraw(
    session: Session, study: Study, *, worker_id: str | None = None, public_id: str | None = None
) -> dict:
    """Delete one participant's answers and items; returns what was removed."""
    if bool(worker_id) == bool(public_id):
        raise StudyError("give exactly one of --worker and --participant")
    row = _find(session, study, worker_id, public_id)
    if row.withdrawn_at is not None:
        raise StudyError(f"participant {row.public_id} was already withdrawn ({row.withdrawn_at})")
    answers = session.execute(delete(R).where(R.c.participant_id == row.id)).rowcount
    items = session.execute(delete(I).where(I.c.participant_id == row.id)).rowcount
    now = utcnow()
    session.execute(
        update(P)
        .where(P.c.id == row.id)
        .values(withdrawn_at=now, raw_worker_id=None, entry_params="{}")
    )
    detail = {"public_id": row.public_id, "answers_removed": answers, "items_removed": items}
    session.execute(
        insert(E).values(
            at=now,
            kind="participant_withdrawn",
            study_id=study.id,
            participant_id=row.id,
            detail=json.dumps(detail, sort_keys=True),
        )
    )
    return detail
