"""Database URLs, engine set-up, schema creation and migrations (never implicit on a request).

The schema is the Alembic history in ``study_server/migrations``: ``init_db`` and
``upgrade`` both run it to the head revision, and the server refuses to start on a database
at another revision.  A database made before migrations existed has the tables but no
``alembic_version``; it is stamped 0001 (that schema) before upgrading.

SQLite is the embedded default: WAL journal, a busy timeout and ``BEGIN IMMEDIATE``
transactions, so concurrent writers wait for each other instead of failing with
"database is locked" when a read transaction tries to upgrade to a write.  Any other
SQLAlchemy URL works; PostgreSQL is the production database.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from .models import Setting

__all__ = [
    "DEFAULT_DB",
    "SchemaError",
    "normalize_db_url",
    "default_db_url",
    "configure_engine",
    "make_engine",
    "init_db",
    "schema_present",
    "schema_revision",
    "head_revision",
    "upgrade",
    "check_current",
    "get_setting",
    "set_setting",
]

DEFAULT_DB = "sqlite:///artifacts/study.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 15_000

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
    """True when the database holds a study schema (of any revision)."""
    return schema_revision(engine) is not None


def _alembic_config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(Path(__file__).parent / "migrations"))
    return script.get_current_head()


def schema_revision(engine: Engine) -> str | None:
    """The database's revision: None when empty, ``"0001"`` for a pre-migration schema."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
            if "alembic_version" in names:
                return MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:  # noqa: BLE001 - any driver error means "cannot use it"
        raise SchemaError(f"cannot open database: {_first_line(exc)}") from None
    return "0001" if {"studies", "participants", "responses"} <= names else None


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to the head revision; returns (revision before, revision after)."""
    from alembic import command

    before = schema_revision(engine)
    head = head_revision()
    if before == head:
        return before, head
    with engine.begin() as conn:
        cfg = _alembic_config(conn)
        if before == "0001" and "alembic_version" not in inspect(conn).get_table_names():
            command.stamp(cfg, "0001")
        command.upgrade(cfg, "head")
    with Session(engine) as session, session.begin():
        if session.get(Setting, "secret_key") is None:
            session.add(Setting(key="secret_key", value=secrets.token_hex(32)))
    return before, head


def init_db(engine: Engine) -> bool:
    """Create the schema (tables, triggers, the installation secret) if absent.

    Returns True when the database was empty.  Existing data is never touched; a database
    at an older revision is left alone (``normlime db upgrade`` migrates it).
    """
    before = schema_revision(engine)
    if before is None:
        upgrade(engine)
    return before is None


def check_current(engine: Engine) -> None:
    """Raise SchemaError unless the database is at this release's revision."""
    revision, head = schema_revision(engine), head_revision()
    if revision is None:
        raise SchemaError("the database has no study schema; run `normlime init-db --db URL` first")
    if revision != head:
        raise SchemaError(
            f"the database schema is at revision {revision}, this release needs {head}; "
            "back it up, then run `normlime db upgrade --db URL`"
        )


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
