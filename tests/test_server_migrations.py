"""Schema migrations: ``normlime db upgrade`` on a database made before migrations existed,
with a half-finished survey in it (tests/data/legacy_v1), on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from normlime_cli import cli
from tests.server_fixtures import Walker, question_number

LEGACY = Path(__file__).parent / "data" / "legacy_v1"


def _load_legacy(db_url: str) -> None:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(url.database) as con:
            con.executescript((LEGACY / "sqlite.sql").read_text())
        return
    import psycopg

    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((LEGACY / "postgresql.sql").read_text())


def _legacy_rows(engine):
    from sqlalchemy import text

    with engine.connect() as conn:
        # the columns of revision 0001 (later revisions add columns, NULL for old rows)
        responses = conn.execute(
            text(
                "SELECT id, participant_id, position, choice, chosen_method, chosen_role, "
                "shown_at, answered_at, response_ms FROM responses ORDER BY id"
            )
        ).all()
        token = conn.execute(text("SELECT token FROM participants")).scalar_one()
    return [tuple(r) for r in responses], token


def test_migrations_build_exactly_the_models(db_url):
    """Running every migration on an empty database gives the schema the code declares."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from study_server import schema
    from study_server.models import db

    engine = schema.make_engine(db_url)
    try:
        assert schema.init_db(engine) is True
        assert schema.schema_revision(engine) == schema.head_revision()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == []
        assert schema.init_db(engine) is False  # idempotent
    finally:
        engine.dispose()


def test_legacy_study_upgrades_mid_survey_and_finishes(db_url, bundle_dir):
    from study_server import create_app, schema

    _load_legacy(db_url)
    engine = schema.make_engine(db_url)
    try:
        assert schema.schema_revision(engine) == "0001"
        before, token = _legacy_rows(engine)
        assert len(before) == 10
        cfg = {"SQLALCHEMY_DATABASE_URI": db_url, "MAPS_DIR": str(bundle_dir)}
        with pytest.raises(schema.SchemaError, match="normlime db upgrade"):
            create_app(cfg)
        # every command that needs the schema refuses in one line until the upgrade
        out = CliRunner().invoke(cli, ["export-votes", "--db", db_url, "--out", "/dev/null"])
        assert out.exit_code == 2 and "db upgrade" in out.output

        result = CliRunner().invoke(cli, ["db", "upgrade", "--db", db_url])
        assert result.exit_code == 0, result.output
        assert "from revision 0001 to" in result.output
        again = CliRunner().invoke(cli, ["db", "upgrade", "--db", db_url])
        assert again.exit_code == 0 and "already at revision" in again.output
        assert _legacy_rows(engine) == (before, token)

        app = create_app(cfg)
        walker = Walker.__new__(Walker)
        walker.client, walker.home = app.test_client(), f"/p/{token}"
        walker.show()
        assert question_number(walker.page) == 11
        for q in range(11, 26):
            assert question_number(walker.page) == q
            resp = walker.answer(2)
            assert resp.status_code == 200, resp.get_data(as_text=True)
        assert "Thank you" in walker.page
        assert 'name="assignmentId" value="LEGACYASSIGN1"' in walker.page
        after, _ = _legacy_rows(engine)
        assert after[:10] == before and len(after) == 25
        with app.app_context():
            from study_server.models import db

            db.engine.dispose()
    finally:
        engine.dispose()


def test_upgrade_of_a_database_that_is_not_ours_changes_nothing(tmp_path):
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE studies (x INTEGER)")  # a foreign table of the same name
    result = CliRunner().invoke(cli, ["db", "upgrade", "--db", f"sqlite:///{path}"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: upgrade failed, nothing changed")
    assert len(result.output.strip().splitlines()) == 1
    with sqlite3.connect(path) as con:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == {"studies"}
