"""Operator actions on the database: studies and the admin password."""

from __future__ import annotations

import json
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from .config import ConfigError, missing_consent, parse_config
from .models import MODES, Event, Study, utcnow
from .recruitment import validate_adapters
from .schema import get_setting, set_setting

__all__ = [
    "StudyError",
    "create_study",
    "find_study",
    "list_studies",
    "set_admin_password",
    "admin_password_hash",
    "MIN_PASSWORD_LENGTH",
]

MIN_PASSWORD_LENGTH = 10
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}")


class StudyError(ValueError):
    """Bad operator input (one readable line)."""


def create_study(
    session: Session,
    name: str,
    *,
    mode: str,
    adapters: dict,
    raw_worker_ids: bool = False,
    config: dict | None = None,
) -> Study:
    """A new study; ``config`` is a parsed study configuration (study_server.config)."""
    if not _NAME_RE.fullmatch(name or ""):
        raise StudyError(
            f"study name {name!r} must be 1-100 letters, digits, spaces, '.', '_' or '-'"
        )
    if mode not in MODES:
        raise StudyError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    adapters = validate_adapters(adapters, mode=mode)
    if session.execute(select(Study.id).where(Study.name == name)).first():
        raise StudyError(f"a study named {name!r} already exists")
    try:
        config = parse_config(config or {})
    except ConfigError as exc:
        raise StudyError(str(exc)) from None
    if reason := missing_consent(mode, config):
        raise StudyError(reason)
    study = Study(
        name=name,
        public_key=secrets.token_urlsafe(12),
        mode=mode,
        secret=secrets.token_hex(32),
        raw_worker_ids=bool(raw_worker_ids),
        adapters=json.dumps(adapters, sort_keys=True),
        config=json.dumps(config, sort_keys=True),
        active=True,
        created_at=utcnow(),
    )
    session.add(study)
    session.flush()
    session.add(
        Event(
            at=utcnow(),
            kind="study_created",
            study_id=study.id,
            detail=json.dumps(
                {
                    "name": name,
                    "mode": mode,
                    "raw_worker_ids": bool(raw_worker_ids),
                    "adapters": sorted(adapters),
                    "config": sorted(config),
                }
            ),
        )
    )
    return study


def find_study(session: Session, name: str | None) -> Study:
    """The named study, or the only/most recent one when ``name`` is None."""
    if name is not None:
        study = session.execute(select(Study).where(Study.name == name)).scalar_one_or_none()
        if study is None:
            raise StudyError(f"no study named {name!r}")
        return study
    study = session.execute(select(Study).order_by(Study.id.desc())).scalars().first()
    if study is None:
        raise StudyError("the database has no study yet; run `normlime create-study`")
    return study


def list_studies(session: Session) -> list[Study]:
    return list(session.execute(select(Study).order_by(Study.id)).scalars())


def set_admin_password(session: Session, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StudyError(f"the admin password needs at least {MIN_PASSWORD_LENGTH} characters")
    set_setting(session, "admin_password_hash", generate_password_hash(password))
    session.add(Event(at=utcnow(), kind="admin_password_set", detail="{}"))


def admin_password_hash(session: Session) -> str | None:
    return get_setting(session, "admin_password_hash")
