"""Database URLs, SQLite settings, schema creation, configuration errors."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from study_server import create_app, schema


def test_urls_are_normalised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert schema.normalize_db_url("sqlite:///rel/db.sqlite3") == (
        f"sqlite:///{tmp_path}/rel/db.sqlite3"
    )
    assert schema.normalize_db_url("postgresql://u@h:5/d") == "postgresql+psycopg://u@h:5/d"
    assert schema.normalize_db_url("postgres://u:pw@h/d") == "postgresql+psycopg://u:pw@h/d"
    for bad in ("sqlite://", "sqlite:///:memory:", "not a url"):
        with pytest.raises(schema.SchemaError):
            schema.normalize_db_url(bad)


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path, bundle_dir):
    url = f"sqlite:///{tmp_path / 'w.sqlite3'}"
    engine = schema.make_engine(url)
    assert schema.init_db(engine) is True
    assert schema.init_db(engine) is False  # idempotent
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "MAPS_DIR": str(bundle_dir)})
    from study_server.models import db

    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == schema.SQLITE_BUSY_TIMEOUT_MS
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_create_app_reads_the_environment(tmp_path, bundle_dir, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env.sqlite3'}"
    schema.init_db(schema.make_engine(url))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("NORMLIME_MAPS", str(bundle_dir))
    monkeypatch.setenv("NORMLIME_FRAME_ANCESTORS", "https://worker.mturk.com")
    monkeypatch.setenv("NORMLIME_BENCHMARK_ENDPOINTS", "0")
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == url
    assert app.config["FRAME_ANCESTORS"] == "https://worker.mturk.com"
    assert app.config["SECRET_KEY"] and len(app.config["SECRET_KEY"]) == 64
    client = app.test_client()
    assert client.get("/_bench/ping").status_code == 404  # off by default
    assert client.get("/_debug/mturk/mturk/externalSubmit").status_code == 404
    assert client.get("/healthz").get_json() == {"ok": True}


def test_create_app_fails_clearly(tmp_path, bundle_dir):
    url = f"sqlite:///{tmp_path / 'none.sqlite3'}"
    with pytest.raises(schema.SchemaError, match="normlime init-db"):
        create_app({"SQLALCHEMY_DATABASE_URI": url, "MAPS_DIR": str(bundle_dir)})
    schema.init_db(schema.make_engine(url))
    with pytest.raises(ValueError, match="a rate is like"):
        create_app(
            {
                "SQLALCHEMY_DATABASE_URI": url,
                "MAPS_DIR": str(bundle_dir),
                "PARTICIPANT_RATE": "lots",
            }
        )
    from explainers.bundle import BundleError

    with pytest.raises(BundleError, match="not a maps bundle"):
        create_app({"SQLALCHEMY_DATABASE_URI": url, "MAPS_DIR": str(tmp_path / "nothing")})


def test_bundle_missing_a_study_method_is_refused(tmp_path):
    import numpy as np

    from explainers.bundle import BundleError, write_bundle

    write_bundle(tmp_path / "three", {m: np.ones((10, 28, 28)) for m in ("normlime", "lime")})
    url = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    schema.init_db(schema.make_engine(url))
    with pytest.raises(BundleError, match="lacks maps for smoothgrad, vargrad"):
        create_app({"SQLALCHEMY_DATABASE_URI": url, "MAPS_DIR": str(tmp_path / "three")})
