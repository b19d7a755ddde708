"""Database URLs, engine set-up and schema creation (never implicit on a request).

SQLite is the embedded default: WAL journal, a busy timeout and ``BEGIN IMMEDIATE``
transactions, so concurrent writers wait for each other instead of failing with
"database is locked" when a read transaction tries to upgrade to a write.  Any other
SQLAlchemy URL works; PostgreSQL is the production database.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from .models import Setting, db

__all__ = [
    "DEFAULT_DB",
    "SchemaError",
    "normalize_db_url",
    "default_db_url",
    "configure_engine",
    "make_engine",
    "init_db",
    "schema_present",
    "get_setting",
    "set_setting",
]

DEFAULT_DB = "sqlite:///artifacts/study.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 15_000

_SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS responses_no_update BEFORE UPDATE ON responses "
    "BEGIN SELECT RAISE(ABORT, 'responses are written once'); END",
]
_PG_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION normlime_refuse_change() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' rows are append-only'; END $$
       LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS events_append_only ON events",
    "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
    "FOR EACH ROW EXECUTE FUNCTION normlime_refuse_change()",
    "DROP TRIGGER IF EXISTS responses_write_once ON responses",
    "CREATE TRIGGER responses_write_once BEFORE UPDATE ON responses "
    "FOR EACH ROW EXECUTE FUNCTION normlime_refuse_change()",
]


class SchemaError(RuntimeError):
    """The database is unreachable, has a bad URL, or lacks the schema (one line)."""


def default_db_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_DB


def normalize_db_url(url: str) -> str:
    """Make relative SQLite paths absolute and pick the psycopg driver for PostgreSQL.

    Flask-SQLAlchemy would resolve a relative SQLite path against the app's instance
    folder while plain SQLAlchemy resolves it against the working directory; making it
    absolute here means the CLI and the server always open the same file.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SchemaError(f"not a database URL: {url!r}") from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise SchemaError("an in-memory SQLite database cannot be shared; give a file path")
        path = Path(database).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        parsed = parsed.set(database=str(path))
    return parsed.render_as_string(hide_password=False)


def configure_engine(engine: Engine) -> Engine:
    """Install the SQLite connection settings (no-op for other databases)."""
    if engine.dialect.name != "sqlite":
        return engine

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_conn, _record):
        # Let SQLAlchemy's "begin" event decide how transactions start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        # synchronous=FULL: a commit is on disk before the vote is acknowledged.
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_engine(url: str, **kwargs) -> Engine:
    url = normalize_db_url(url)
    if url.startswith("sqlite"):
        Path(make_url(url).database).parent.mkdir(parents=True, exist_ok=True)
    return configure_engine(create_engine(url, **kwargs))


def schema_present(engine: Engine) -> bool:
    try:
        names = set(inspect(engine).get_table_names())
    except Exception as exc:  # noqa: BLE001 - any driver error means "cannot use it"
        raise SchemaError(f"cannot open database: {_first_line(exc)}") from None
    return set(db.metadata.tables) <= names


def init_db(engine: Engine) -> bool:
    """Create the tables, triggers and the installation secret if absent.

    Returns True when something was created.  Existing data is never touched.
    """
    existed = schema_present(engine)
    db.metadata.create_all(engine, checkfirst=True)
    with engine.begin() as conn:
        triggers = _SQLITE_TRIGGERS if engine.dialect.name == "sqlite" else _PG_TRIGGERS
        if engine.dialect.name in ("sqlite", "postgresql"):
            for ddl in triggers:
                conn.execute(text(ddl))
    with Session(engine) as session, session.begin():
        if session.get(Setting, "secret_key") is None:
            session.add(Setting(key="secret_key", value=secrets.token_hex(32)))
    return not existed


def get_setting(session: Session, key: str) -> str | None:
    return session.execute(select(Setting.value).where(Setting.key == key)).scalar_one_or_none()


def set_setting(session: Session, key: str, value: str) -> None:
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
