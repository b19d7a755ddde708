"""Fixtures and helpers for the study-server tests (imported by tests/test_server_*.py).

PostgreSQL tests run in a throw-away database ``normlime_test_<random>`` created on the
server at 127.0.0.1:5432 and dropped afterwards.  PostgreSQL must be reachable: when it
is not, those tests fail (they never skip).
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import secrets
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

PG_ADMIN_URL = os.environ.get("NORMLIME_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
METHODS = ("normlime", "lime", "smoothgrad", "vargrad")


# ----------------------------------------------------------------------------- bundle


#: a complete study configuration (consent facts and a Prolific study), as parsed from TOML
STUDY_CONFIG = {
    "consent": {
        "researcher": "Dr Ada Example",
        "institution": "Example University, School of Computing",
        "contact": "ada.example@example.edu",
        "ethics": "EX-REC-2026-117",
        "pay": "GBP 2.50 on completion",
        "minutes": 12,
        "keep": "until 2031-12-31, then deleted",
    },
    "prolific": {
        "title": "Which picture explains the digit best?",
        "description": "Look at 25 sets of four pictures and pick the most helpful one.",
        "reward_cents": 250,
        "places": 100,
    },
}


def make_bundle(root: Path, pictures: bool = True) -> Path:
    """A maps bundle with four clearly distinct synthetic maps per digit (test data), and
    a picture of every digit (the checks of survey version 2) unless ``pictures=False``
    (a bundle made before pictures: version-1 checks)."""
    from explainers.bundle import write_bundle

    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
    maps = {}
    for k, method in enumerate(METHODS):
        arr = np.zeros((10, 28, 28), np.float32)
        for d in range(10):
            # a blob whose place depends on the digit and whose size on the method
            cy, cx = 4 + 2 * d, 6 + 5 * k
            arr[d] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (4.0 + 6.0 * k))
        maps[method] = arr
    digits = np.stack([np.exp(-((yy - 14) ** 2 + (xx - 2 - 2.5 * d) ** 2) / 9) for d in range(10)])
    write_bundle(root, maps, pictures=digits if pictures else None)
    return root


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("maps"))


# ----------------------------------------------------------------------------- databases


@contextlib.contextmanager
def pg_database():
    """Create a uniquely named PostgreSQL database; yields its SQLAlchemy URL; drops it."""
    import psycopg

    name = f"normlime_test_{secrets.token_hex(6)}"
    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin)
    url = f"postgresql+psycopg://{parts.netloc}/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.sqlite3'}"
    else:
        with pg_database() as url:
            yield url


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'study.sqlite3'}"


# ----------------------------------------------------------------------------- servers


@dataclass
class Server:
    """An initialised database with one study, and the app built on it."""

    app: object
    engine: object
    db_url: str
    study_key: str
    study_id: int
    secret: str
    maps_dir: Path
    extra: dict = field(default_factory=dict)

    def client(self):
        return self.app.test_client()

    def snapshot(self) -> dict:
        """Every row of every table (to assert that a refused request changed nothing)."""
        from sqlalchemy import select

        from study_server.models import db

        out = {}
        with self.engine.connect() as conn:
            for name, table in sorted(db.metadata.tables.items()):
                rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
                out[name] = [tuple(r) for r in rows]
        return out

    def scalar(self, sql: str, **params):
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params):
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).all()


def make_server(
    db_url: str,
    maps_dir: Path,
    *,
    mode: str = "debug",
    config: dict | None = None,
    raw_worker_ids: bool = False,
    adapters: dict | None = None,
    study_config: dict | None = None,
) -> Server:
    from sqlalchemy.orm import Session

    from study_server import create_app, schema, studies
    from study_server.recruitment import default_adapters

    engine = schema.make_engine(db_url)
    schema.init_db(engine)
    with Session(engine) as session, session.begin():
        study = studies.create_study(
            session,
            f"study-{secrets.token_hex(3)}",
            mode=mode,
            adapters=adapters or default_adapters(completion_code="PROLIFICCC"),
            raw_worker_ids=raw_worker_ids,
            # a live study needs its consent facts
            config=study_config if study_config is not None or mode != "live" else STUDY_CONFIG,
        )
        session.flush()
        key, sid, secret = study.public_key, study.id, study.secret
    cfg = {
        "SQLALCHEMY_DATABASE_URI": db_url,
        "MAPS_DIR": str(maps_dir),
        "PARTICIPANT_RATE": "100000/1",
        "IMAGE_RATE": "100000/1",
        "ENTRY_RATE": "100000/1",
    }
    cfg.update(config or {})
    app = create_app(cfg)
    return Server(app, engine, db_url, key, sid, secret, maps_dir)


@pytest.fixture
def server(db_url, bundle_dir):
    srv = make_server(db_url, bundle_dir)
    yield srv
    srv.engine.dispose()
    with srv.app.app_context():
        from study_server.models import db

        db.engine.dispose()


@pytest.fixture
def sqlite_server(sqlite_url, bundle_dir):
    srv = make_server(sqlite_url, bundle_dir)
    yield srv
    srv.engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """Serve a WSGI app from a background thread (werkzeug's threaded server)."""

    def __init__(self, app, host: str = "127.0.0.1"):
        from werkzeug.serving import make_server as wz_make_server

        self.port = free_port()
        self.host = host
        self._server = wz_make_server(host, self.port, app, threaded=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


# ----------------------------------------------------------------------------- page parsing


def hidden_fields(page: str) -> dict[str, str]:
    return {
        html.unescape(k): html.unescape(v)
        for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    }


def form_action(page: str, cls: str | None = None) -> str:
    pattern = r'<form method="post" action="([^"]+)"'
    if cls:
        pattern += rf' class="{cls}"'
    return html.unescape(re.search(pattern, page).group(1))


def image_urls(page: str) -> list[str]:
    return [html.unescape(u) for u in re.findall(r'<img src="(/p/[^"]+)"', page)]


def question_number(page: str) -> int | None:
    m = re.search(r"Question (\d+) of 25", page)
    return int(m.group(1)) if m else None


def asked_digit(page: str) -> int:
    return int(re.search(r'<mark class="digit">(\d)</mark>', page).group(1))


class Walker:
    """A participant taking the survey through the Flask test client."""

    def __init__(self, srv: Server, client=None):
        self.srv = srv
        self.client = client or srv.client()
        self.home: str | None = None
        self.page: str = ""

    def enter(self, adapter: str = "mturk", **params) -> object:
        path = f"/s/{self.srv.study_key}" + ("" if adapter == "link" else f"/{adapter}")
        resp = self.client.get(path, query_string=params)
        self.page = resp.get_data(as_text=True)
        if resp.status_code == 303:
            self.home = resp.headers["Location"]
        return resp

    def consent(self) -> object:
        fields = hidden_fields(self.page)
        fields["agree"] = "yes"
        resp = self.client.post(form_action(self.page, "consent"), data=fields)
        if resp.status_code == 303:
            self.home = resp.headers["Location"]
        return resp

    def start(self) -> object:
        resp = self.client.post(self.home + "/start")
        assert resp.status_code == 303, resp.status_code
        return self.show()

    def show(self) -> object:
        resp = self.client.get(self.home)
        self.page = resp.get_data(as_text=True)
        return resp

    def answer(self, choice: int, page: str | None = None) -> object:
        page = page or self.page
        fields = hidden_fields(page)
        fields["c"] = str(choice)
        resp = self.client.post(self.home + "/answer", data=fields)
        if resp.status_code == 200:
            self.page = resp.get_data(as_text=True)
        return resp

    def begin(self, worker: str = "W1", assignment: str = "A1", **extra) -> Walker:
        params = {
            "workerId": worker,
            "assignmentId": assignment,
            "hitId": "H1",
            "turkSubmitTo": "https://workersandbox.mturk.com",
            **extra,
        }
        r = self.enter("mturk", **params)
        assert r.status_code == 200, r.get_data(as_text=True)
        r = self.consent()
        assert r.status_code == 303, r.get_data(as_text=True)
        self.start()
        return self

    @property
    def token(self) -> str:
        return self.home.rsplit("/", 1)[-1]


def participant_items(srv: Server, token: str) -> list[dict]:
    rows = srv.rows(
        "SELECT i.position, i.is_check, i.digit, i.slots FROM items i "
        "JOIN participants p ON p.id = i.participant_id WHERE p.token = :t ORDER BY i.position",
        t=token,
    )
    return [
        {"position": r[0], "is_check": bool(r[1]), "digit": r[2], "slots": json.loads(r[3])}
        for r in rows
    ]


# ----------------------------------------------------------------------------- real HTTP


class Http:
    """One HTTP/1.1 request per connection (as browsers behind a panel mostly do)."""

    def __init__(self, base: str, timeout: float = 60):
        parts = urlsplit(base)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout

    def request(self, method: str, path: str, data: dict | None = None, headers=None):
        import http.client
        from urllib.parse import urlencode

        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            body = urlencode(data) if data is not None else None
            hdrs = {"Content-Type": "application/x-www-form-urlencoded"} if data else {}
            hdrs.update(headers or {})
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read().decode()
        finally:
            conn.close()

    def path_of(self, location: str) -> str:
        return location.replace(f"http://{self.host}:{self.port}", "")


def http_enter(http: Http, key: str, worker: str, assignment: str | None = None) -> str:
    """Enter through the MTurk link, consent and start; returns the participant's home path."""
    from urllib.parse import urlencode

    entry = f"/s/{key}/mturk?" + urlencode(
        {
            "workerId": worker,
            "assignmentId": assignment or f"{worker}_A",
            "hitId": "H",
            "turkSubmitTo": "https://workersandbox.mturk.com",
        }
    )
    status, headers, page = http.request("GET", entry)
    if status == 303:
        return http.path_of(headers["Location"])
    assert status == 200, (status, page[:300])
    status, headers, page = http.request(
        "POST", form_action(page, "consent"), {**hidden_fields(page), "agree": "yes"}
    )
    assert status == 303, (status, page[:300])
    home = http.path_of(headers["Location"])
    assert http.request("POST", home + "/start")[0] == 303
    return home


@contextlib.contextmanager
def gunicorn(
    db_url: str,
    maps_dir: Path,
    *,
    workers: int = 4,
    env: dict | None = None,
    log_path: Path | None = None,
):
    """``gunicorn -w N`` on a free port with the project's config; yields its base URL."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    full_env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "NORMLIME_MAPS": str(maps_dir),
        "NORMLIME_PARTICIPANT_RATE": "100000 per second",
        "NORMLIME_IMAGE_RATE": "100000 per second",
        "NORMLIME_ENTRY_RATE": "100000 per second",
        **(env or {}),
    }
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    cmd = [
        sys.executable, "-m", "gunicorn", "-c", "python:study_server.gunicorn_conf",
        "-w", str(workers), "-b", f"127.0.0.1:{port}", "--access-logfile", "-",
        "--graceful-timeout", "5", "study_server:create_app()",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start (exit {proc.poll()})") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_path:
            log.close()


@pytest.fixture
def browser():
    """Debian's Chromium through Playwright (skips, or fails under
    NORMLIME_REQUIRE_BROWSER=1, when it is absent)."""
    from tests.test_browser_mturk import CHROMIUM_ARGS, chromium_or_skip

    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def option_geometry(page) -> tuple[list, list]:
    """On a loaded item page: every option's [left, top, width, height] and every map's
    [width, height] on screen, once the last map has loaded."""
    page.locator(".option img").last.evaluate(
        "img => img.complete || new Promise(r => img.addEventListener('load', r))"
    )
    boxes = page.locator(".option").evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return [r.left, r.top, r.width, r.height]; })"
    )
    imgs = page.locator(".option img").evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })"
    )
    return boxes, imgs
