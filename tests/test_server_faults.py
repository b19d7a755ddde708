"""Faults survived: the database stops mid-run (an immediate shutdown, as a crash or a
failover would) and comes back.  Every acknowledged vote is stored, none is acknowledged
without its commit, participants get a 503 page with Retry-After meanwhile, and the same
gunicorn serves on once the database is back.

The test runs its own PostgreSQL (initdb and pg_ctl in a temporary directory on a free
loopback port), so stopping it disturbs nothing else.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.server_fixtures import Http, free_port, gunicorn, hidden_fields, make_server

N_PARTICIPANTS = 6


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / name).exists():
            return str(root / name)
    pytest.fail(f"{name} not found: the fault test needs PostgreSQL's server binaries")


class Postgres:
    """A throw-away PostgreSQL cluster (run as the ``postgres`` user when we are root)."""

    def __init__(self, root: Path):
        self.root, self.data, self.port = root, root / "data", free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(root, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", opts,
                  "-l", str(self.root / "pg.log"), "-w", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/faults"


@pytest.fixture
def own_postgres():
    import tempfile

    import psycopg

    # not under pytest's tmp_path: the postgres user must be able to reach the directory
    pg = Postgres(Path(tempfile.mkdtemp(prefix="normlime-pg-")))
    pg.init()
    pg.start()
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg.port}/postgres",
                         autocommit=True) as conn:  # fmt: skip
        conn.execute("CREATE DATABASE faults")
    try:
        yield pg
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            pg.stop("immediate")
        shutil.rmtree(pg.root, ignore_errors=True)


class Participant(threading.Thread):
    """Takes a whole survey, retrying whatever got a 503 (as the page tells people to)."""

    def __init__(self, http: Http, key: str, i: int):
        super().__init__(daemon=True)
        self.http, self.key, self.i = http, key, i
        self.rng = random.Random(i)
        self.acknowledged: dict[int, int] = {}
        self.unavailable: list[tuple[str, dict]] = []
        self.unexpected: list[tuple[int, str]] = []
        self.token = None

    def request(self, method, path, data=None):
        while True:
            status, headers, page = self.http.request(method, path, data)
            if status != 503:
                if status >= 500:
                    self.unexpected.append((status, page[:500]))
                return status, headers, page
            self.unavailable.append((page, headers))
            time.sleep(0.3)

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.unexpected.append((0, repr(exc)))

    def _run(self) -> None:
        q = (f"?workerId=FW{self.i}&assignmentId=FA{self.i}&hitId=H"
             "&turkSubmitTo=https://workersandbox.mturk.com")  # fmt: skip
        _, _, page = self.request("GET", f"/s/{self.key}/mturk{q}")
        action = page.split('class="consent"')[0].rsplit('action="', 1)[1].split('"')[0]
        status, headers, _ = self.request("POST", action, {**hidden_fields(page), "agree": "yes"})
        home = self.http.path_of(headers["Location"])
        self.token = home.rsplit("/", 1)[-1]
        self.request("POST", home + "/start")
        _, _, page = self.request("GET", home)
        while "Thank you" not in page:
            fields = hidden_fields(page)
            choice = self.rng.randint(1, 4)
            status, _, page = self.request("POST", home + "/answer", {**fields, "c": choice})
            assert status == 200, (status, page[:300])
            self.acknowledged[int(fields["q"])] = choice
            time.sleep(0.1)  # about human speed x 50


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_votes_survive_a_database_crash_mid_run(own_postgres, bundle_dir, tmp_path):
    pg = own_postgres
    srv = make_server(pg.url, bundle_dir, mode="sandbox")
    srv.engine.dispose()
    with srv.app.app_context():
        from study_server.models import db

        db.engine.dispose()
    log = tmp_path / "gunicorn.log"
    with gunicorn(pg.url, bundle_dir, workers=2, log_path=log) as base:
        http = Http(base, timeout=30)
        people = [Participant(http, srv.study_key, i) for i in range(N_PARTICIPANTS)]
        for p in people:
            p.start()
        deadline = time.monotonic() + 60
        while min(len(p.acknowledged) for p in people) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        pg.stop("immediate")  # mid-survey for everyone
        time.sleep(2.0)
        pg.start()
        for p in people:
            p.join(timeout=240)
        status, _, _ = http.request("GET", "/healthz")
    assert status == 200
    assert [p.unexpected for p in people] == [[]] * N_PARTICIPANTS
    outage = [u for p in people for u in p.unavailable]
    assert outage, "the outage was not noticed: stop the database earlier"
    print(f"{len(outage)} requests answered 503 during the outage")
    for page, headers in outage:
        assert int(headers["Retry-After"]) >= 1
        assert "database is not answering" in page and "Nothing you sent was lost" in page
    stored = {
        (token, position): choice
        for token, position, choice in srv.rows(
            "SELECT p.token, r.position, r.choice FROM responses r "
            "JOIN participants p ON p.id = r.participant_id"
        )
    }
    acknowledged = {(p.token, q): c for p in people for q, c in p.acknowledged.items()}
    assert len(acknowledged) == 25 * N_PARTICIPANTS
    assert stored == acknowledged  # nothing lost, nothing stored unacknowledged or changed
    # recovered without a restart: the workers booted once each
    assert log.read_text().count("Booting worker") == 2
    srv.engine.dispose()
