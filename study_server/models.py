"""Database models: studies, participants, their generated items, responses, an event log.

Times are timezone-aware UTC ``datetime`` values written by the application (SQLite hands
them back naive; :func:`as_utc` restores the zone).  Integrity lives in the schema, not only
in code: one participation per worker per study, one response per participant and item,
and an append-only event log (see :mod:`study_server.schema` for the triggers).
"""

from __future__ import annotations

import datetime as dt

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "db",
    "Setting",
    "Study",
    "Participant",
    "Item",
    "Response",
    "Event",
    "AdminSession",
    "PlatformCall",
    "PlatformSubmission",
    "utcnow",
    "as_utc",
]

MODES = ("debug", "sandbox", "live")


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


class Setting(db.Model):
    """Installation-wide key/value settings (Flask secret key, admin password hash)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Study(db.Model):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: public, unguessable id used in entry links (the numeric id stays internal)
    public_key: Mapped[str] = mapped_column(String(32), unique=True)
    mode: Mapped[str] = mapped_column(String(10))
    #: per-study HMAC key: worker-id hashes, image URLs, form signatures, completion codes
    secret: Mapped[str] = mapped_column(String(64))
    raw_worker_ids: Mapped[bool] = mapped_column(Boolean, default=False)
    #: JSON: recruitment adapter name -> settings (see study_server.recruitment)
    adapters: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: JSON of the study's configuration file (consent facts, Prolific settings); see
    #: study_server.config
    config: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    #: participations made so far (the block assignment of conditions counts them)
    arrivals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Participant(db.Model):
    __tablename__ = "participants"
    __table_args__ = (
        UniqueConstraint("study_id", "worker_key", name="uq_participant_worker"),
        UniqueConstraint("study_id", "entry_nonce", name="uq_participant_entry"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    #: pseudonymous id used in exports
    public_id: Mapped[str] = mapped_column(String(16), unique=True)
    #: the unguessable capability carried in every participant URL
    token: Mapped[str] = mapped_column(String(64), unique=True)
    #: HMAC(study secret, worker id), the same whichever adapter the worker came through
    #: (rows made before schema revision 0002 hold HMAC(secret, adapter|worker id); see
    #: study_server.flow.worker_keys); NULL for anonymous plain-link participants
    worker_key: Mapped[str | None] = mapped_column(String(64))
    raw_worker_id: Mapped[str | None] = mapped_column(String(128))
    adapter: Mapped[str] = mapped_column(String(32))
    entry_nonce: Mapped[str] = mapped_column(String(32))
    #: MTurk assignmentId / Prolific SESSION_ID
    assignment_id: Mapped[str | None] = mapped_column(String(128))
    #: MTurk turkSubmitTo (origin the completion form is posted to)
    submit_to: Mapped[str | None] = mapped_column(String(200))
    #: JSON of the other recorded entry parameters (hitId, STUDY_ID, ...)
    entry_params: Mapped[str] = mapped_column(Text, default="{}")
    mode: Mapped[str] = mapped_column(String(10))
    seed: Mapped[int] = mapped_column(BigInteger)
    survey_version: Mapped[int] = mapped_column(SmallInteger)
    bundle_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    completion_code: Mapped[str | None] = mapped_column(String(64))
    #: the between-participant condition ("none" or a method); NULL in preference studies
    condition: Mapped[str | None] = mapped_column(String(32))
    #: set by ``normlime withdraw``: the answers and items are deleted, raw ids cleared
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Item(db.Model):
    """One of a participant's generated items (25 for MNIST), with its option order."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("participant_id", "position", name="uq_item_position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    #: 1..n_items, the order in which the participant sees the items
    position: Mapped[int] = mapped_column(SmallInteger)
    is_check: Mapped[bool] = mapped_column(Boolean)
    #: the asked class's index (the name dates from the MNIST-only study)
    digit: Mapped[int] = mapped_column(SmallInteger)
    #: JSON list of [method, class, role] triples, one per screen slot (left to right); in
    #: the designs that measure help, [picture file, class, role] of the pictures shown
    slots: Mapped[str] = mapped_column(Text)
    #: learn, test or check in those designs (NULL in preference studies)
    phase: Mapped[str | None] = mapped_column(String(8))
    #: the stimuli bundle's item id shown (NULL in preference studies)
    stimulus: Mapped[str | None] = mapped_column(String(64))


class Response(db.Model):
    """One answer: written once, never updated."""

    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("participant_id", "position", name="uq_response_item"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    position: Mapped[int] = mapped_column(SmallInteger)
    #: 1..4, the chosen option's screen position
    choice: Mapped[int] = mapped_column(SmallInteger)
    chosen_method: Mapped[str] = mapped_column(String(32))
    chosen_role: Mapped[str] = mapped_column(String(16))
    #: when the item was first shown (the previous answer's commit, or the start)
    shown_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    response_ms: Mapped[int | None] = mapped_column(Integer)
    #: ms from the item being shown until all its images had loaded, as the page reported
    #: with the vote; NULL when it did not report (no JavaScript, or an older answer)
    images_ms: Mapped[int | None] = mapped_column(Integer)


class Event(db.Model):
    """Append-only audit log (UPDATE and DELETE are refused by database triggers)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_kind_at", "kind", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    study_id: Mapped[int | None] = mapped_column(Integer)
    participant_id: Mapped[int | None] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="{}")


class AdminSession(db.Model):
    """One admin login.  The cookie carries a random id; only its SHA-256 is stored, and
    logging out (or expiry) ends the session for every copy of the cookie."""

    __tablename__ = "admin_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class PlatformCall(db.Model):
    """One call that moves state or money on a recruitment platform, journalled so that it
    happens exactly once: the row is committed as ``intent`` before the call is sent and
    updated with its outcome after.  ``key`` names the effect (e.g. ``pay:<bulk bonus id>``),
    unique per platform, so a second attempt finds the first one's row."""

    __tablename__ = "platform_calls"
    __table_args__ = (UniqueConstraint("platform", "key", name="uq_platform_call_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    platform: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(200))
    #: intent (committed, not yet known to be sent), done, failed (the platform refused;
    #: nothing happened), unknown (sent, outcome not known: checked before any retry)
    state: Mapped[str] = mapped_column(String(16))
    remote_id: Mapped[str | None] = mapped_column(String(128))
    request: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    outcome: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PlatformSubmission(db.Model):
    """A platform's submission as last synced (``normlime prolific sync``).  The worker is
    kept as the study's keyed hash (see study_server.tokens.worker_key), never raw."""

    __tablename__ = "platform_submissions"
    __table_args__ = (
        UniqueConstraint("platform", "submission_id", name="uq_platform_submission"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    platform: Mapped[str] = mapped_column(String(32))
    submission_id: Mapped[str] = mapped_column(String(128))
    worker_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    entered_code: Mapped[str | None] = mapped_column(String(128))
    synced_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
