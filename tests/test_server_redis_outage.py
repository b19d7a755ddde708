"""Redis, the shared rate-limit storage, unreachable in the middle of a study.

``study_server/limits.py``: "If the shared storage is unreachable, both fall back to
per-process memory storage rather than refusing votes" (fail open, per process).  The app
here talks to Redis through a TCP proxy in a thread (:class:`RedisProxy`), which the tests
stop (connections reset, connection refused: Redis down or restarting), hang (connections
accepted and held, nothing answered: a frozen Redis or a network partition) and resume.

Pinned: participants keep voting (every answer stored exactly once, no 5xx), the
per-token limit still applies from memory (a flood from one token gets 429s), so do the
admin login limit and the entry limit, the outage is logged once rather than per request,
and when Redis returns the limits go back to it.

Two tests fail on the present code and show bugs (see their docstrings):
``test_a_hung_redis_does_not_hang_the_vote_path`` (no socket timeouts: a vote waits for
Redis forever) and ``test_participant_limits_return_to_redis_with_only_votes_after_the_outage``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import select
import socket
import statistics
import threading
import time

import pytest
import redis
from sqlalchemy.orm import Session

from study_server.studies import set_admin_password
from tests.server_fixtures import Http, LiveServer, Walker, hidden_fields, make_server

pytestmark = pytest.mark.timeout(120)

REDIS = ("127.0.0.1", 6379)
#: what redis-py reads from the storage URL to bound a connect and a reply
TIMEOUTS = "?socket_connect_timeout=0.5&socket_timeout=0.5"
PARTICIPANT_RATE = "30 per 10 seconds"
ADMIN_RATE = "3 per minute"
ENTRY_RATE = "20 per minute"
PASSWORD = "the admin password"
#: ParticipantLimits stays on memory for this long after a failure, then tries Redis again
RETRY_S = 10


class RedisProxy:
    """127.0.0.1:<port> -> Redis, in threads.  ``stop()``: listener closed and every
    connection reset (connection refused); ``hang()``: connections held open, nothing
    forwarded or answered; ``resume()``: forwarding again (held connections are closed, so
    their clients reconnect)."""

    def __init__(self, target=REDIS):
        self.target = target
        self.port = 0
        self.mode = "up"
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener = None
        self._listen()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        self.port = ls.getsockname()[1]
        ls.listen(64)
        self._listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            if self.mode == "down":
                client.close()
                return
            with self._lock:
                self._conns.append(client)
            if self.mode == "hang":
                continue  # held: the client waits for an answer that never comes
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.append(upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a, b) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.05)
                if self.mode == "hang":
                    continue
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for s in (a, b):
                s.close()

    @staticmethod
    def _shut(sock) -> None:
        # shutdown first: a plain close() leaves a listener blocked in accept() (another
        # thread) accepting one more connection, and a connection open to its peer
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def _drop_connections(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            self._shut(c)

    def stop(self) -> None:
        self.mode = "down"
        self._shut(self._listener)
        self._drop_connections()

    def hang(self) -> None:
        self.mode = "hang"

    def resume(self) -> None:
        if self.mode == "down":
            self.mode = "up"
            self._listen()
        else:
            self._drop_connections()
            self.mode = "up"

    def close(self) -> None:
        if self.mode != "down":
            self.stop()


@pytest.fixture
def proxy():
    p = RedisProxy()
    yield p
    p.close()


@pytest.fixture
def direct():
    """Redis itself (not through the proxy), to look at the limiter's keys."""
    client = redis.Redis(*REDIS, socket_timeout=5)
    client.ping()  # Redis must be there, as for tests/test_server_processes.py
    yield client
    client.close()


def limit_keys(direct, prefix: str, *parts: str) -> dict[str, int]:
    """The limiter's moving-window keys under ``prefix`` naming ``parts`` -> hits counted."""
    pattern = "*" + "*".join([prefix, *parts]) + "*"
    return {k.decode(): direct.llen(k) for k in direct.scan_iter(match=pattern)}


def outage_app(db_url, bundle_dir, storage_url: str):
    prefix = f"outage-{secrets.token_hex(4)}"
    srv = make_server(
        db_url,
        bundle_dir,
        config={
            "LIMITS_STORAGE": storage_url,
            "LIMITS_KEY_PREFIX": prefix,
            "PARTICIPANT_RATE": PARTICIPANT_RATE,
            "ADMIN_LOGIN_RATE": ADMIN_RATE,
            "ENTRY_RATE": ENTRY_RATE,
        },
    )
    with Session(srv.engine) as session, session.begin():
        set_admin_password(session, PASSWORD)
    return srv, prefix


def cleanup(srv, direct, prefix: str) -> None:
    for k in direct.scan_iter(match=f"*{prefix}*"):
        direct.delete(k)
    srv.engine.dispose()
    with srv.app.app_context():
        from study_server.models import db

        db.engine.dispose()


def wrong_login(client) -> int:
    import re

    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/admin/login", data={"password": "wrong", "csrf_token": token}).status_code


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def outage_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "storage unreachable" in r.getMessage()
    ]


def stored_answers(srv, token: str) -> list[tuple[int, int]]:
    return [
        tuple(r)
        for r in srv.rows(
            "SELECT r.position, r.choice FROM responses r JOIN participants p "
            "ON p.id = r.participant_id WHERE p.token = :t ORDER BY r.position",
            t=token,
        )
    ]


# ----------------------------------------------------------------------------- Redis down


def test_votes_go_on_and_limits_hold_from_memory_while_redis_is_down(
    db_url, bundle_dir, proxy, direct, caplog
):
    caplog.set_level(logging.WARNING)
    srv, prefix = outage_app(db_url, bundle_dir, proxy.url)
    try:
        walkers = [Walker(srv).begin(worker=f"W{i}", assignment=f"A{i}") for i in range(3)]
        sent = {w.token: {} for w in walkers}
        for w in walkers:
            for k in (1, 2):
                assert w.answer(k).status_code == 200
                sent[w.token][k] = k
        # while Redis is up the per-token counts are in Redis
        assert sum(limit_keys(direct, prefix, "/p/", walkers[0].token).values()) == 4
        assert outage_warnings(caplog) == []

        proxy.stop()  # Redis unreachable mid-study

        # a flood from one token: the limit (30 per 10 s) still applies, from memory
        flooder = walkers[2]
        flood = [flooder.client.get(flooder.home) for _ in range(40)]
        statuses = [r.status_code for r in flood]
        assert statuses.count(200) == 30 and statuses.count(429) == 10, statuses
        assert statuses[:30] == [200] * 30
        assert int(flood[-1].headers["Retry-After"]) >= 1

        # the admin login limit (3 per minute) still applies, from memory
        admin = srv.client()
        logins = [wrong_login(admin) for _ in range(5)]
        assert logins == [401, 401, 401, 429, 429], logins

        # everyone keeps voting to the end, and a new participant joins
        latencies = []
        late = Walker(srv).begin(worker="LATE", assignment="LATEA")  # entry, consent, start
        walkers.append(late)
        # the entry limit (20 per minute per address, entry and consent) too: 2 used above
        entries = [srv.client().get(f"/s/{srv.study_key}?pid=E{i}").status_code for i in range(20)]
        assert entries == [200] * 18 + [429] * 2, entries
        sent[late.token] = {}
        for w in walkers[:2] + walkers[3:]:
            while "Thank you" not in w.page:
                k = int(hidden_fields(w.page)["q"])
                choice = k % 4 + 1
                resp, took = timed(lambda w=w, c=choice: w.answer(c))
                latencies.append(took)
                assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
                sent[w.token][k] = choice
        for w in walkers[:2] + walkers[3:]:
            assert stored_answers(srv, w.token) == sorted(sent[w.token].items())
            assert len(sent[w.token]) == 25
        assert srv.scalar("SELECT count(*) FROM participants WHERE completed_at IS NOT NULL") == 3

        # nothing of it reached Redis, and none of it was slow
        assert sum(limit_keys(direct, prefix, "/p/", walkers[0].token).values()) <= 4
        assert limit_keys(direct, prefix, "/p/", late.token) == {}
        warnings = outage_warnings(caplog)
        print(
            f"\nrequests while Redis refused connections: median "
            f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms "
            f"over {len(latencies)} votes; warnings logged: {warnings}"
        )
        assert max(latencies) < 1.0, max(latencies)

        # said once, not per request (ParticipantLimits, and Flask-Limiter for the entry
        # and login limits: one line each at most)
        assert 1 <= len(warnings) <= 2, warnings
        assert len(set(warnings)) == len(warnings), warnings
    finally:
        cleanup(srv, direct, prefix)


def test_limits_return_to_redis_when_it_comes_back(sqlite_url, bundle_dir, proxy, direct):
    srv, prefix = outage_app(sqlite_url, bundle_dir, proxy.url)
    try:
        w = Walker(srv).begin()
        admin = srv.client()
        proxy.stop()
        assert w.answer(1).status_code == 200
        assert wrong_login(admin) == 401
        down_at = time.monotonic()
        proxy.resume()
        assert w.answer(2).status_code == 200  # still on memory: within the retry delay
        time.sleep(max(0.0, RETRY_S + 0.5 - (time.monotonic() - down_at)))
        # a new participant's entry and a login: Flask-Limiter finds Redis again
        assert srv.client().get(f"/s/{srv.study_key}?pid=BACK").status_code == 200
        assert wrong_login(admin) == 401
        for k in range(3, 8):
            assert w.answer(k % 4 + 1).status_code == 200
        assert sum(limit_keys(direct, prefix, "/p/", w.token).values()) == 5
        assert sum(limit_keys(direct, prefix, "admin-login").values()) >= 1
        assert sum(limit_keys(direct, prefix, "entry").values()) >= 1
        # and the shared counts are the ones that limit again
        statuses = [w.client.get(w.home).status_code for _ in range(30)]
        assert statuses.count(429) == 5, statuses  # 30 per 10 s, 5 used by the answers
    finally:
        cleanup(srv, direct, prefix)


def test_participant_limits_return_to_redis_with_only_votes_after_the_outage(
    sqlite_url, bundle_dir, proxy, direct
):
    """BUG (fails on the present code).  ParticipantLimits asks ``limiter.limiter``, which
    is Flask-Limiter's in-memory fallback for as long as Flask-Limiter thinks its storage
    is dead; Flask-Limiter only re-checks its storage when a request for one of *its*
    limits comes (entry, consent, admin login).  So once an entry or login request met the
    outage in a process, that process's per-token limits stay per-process after Redis is
    back until such a request reaches it: with gunicorn -w 4 a participant may again
    reach 4 times the limit, for as long as no new participant enters through that worker
    (at the end of a study, indefinitely).  Fix (limits.py, ParticipantLimits): keep a
    strategy of its own on the shared storage, ``MovingWindowRateLimiter(limiter.storage)``,
    used whenever its own 10-s retry window has passed, instead of ``limiter.limiter``."""
    srv, prefix = outage_app(sqlite_url, bundle_dir, proxy.url)
    try:
        w = Walker(srv).begin()
        proxy.stop()
        assert srv.client().get(f"/s/{srv.study_key}?pid=DURING").status_code == 200
        assert w.answer(1).status_code == 200
        down_at = time.monotonic()
        proxy.resume()
        time.sleep(max(0.0, RETRY_S + 0.5 - (time.monotonic() - down_at)))
        for k in range(2, 7):  # votes only: nobody new enters
            assert w.answer(k % 4 + 1).status_code == 200
        back = sum(limit_keys(direct, prefix, "/p/", w.token).values())
        assert back == 5, f"{back} of 5 votes after the outage counted in Redis"
    finally:
        cleanup(srv, direct, prefix)


# ----------------------------------------------------------------------------- Redis hung


def hung_redis_votes(db_url, bundle_dir, proxy, direct, storage_url, *, timeout: float):
    """Votes over real HTTP while Redis accepts connections and never answers; returns
    each vote's (status or exception, seconds)."""
    srv, prefix = outage_app(db_url, bundle_dir, storage_url)
    results = []
    try:
        with LiveServer(srv.app) as live:
            http = Http(live.url, timeout=timeout)
            w = Walker(srv).begin()
            page = w.page
            proxy.hang()
            for _ in range(6):
                fields = {**hidden_fields(page), "c": "1"}
                t0 = time.perf_counter()
                try:
                    status, _, page = http.request("POST", w.home + "/answer", fields)
                except OSError as exc:  # socket.timeout included
                    results.append((type(exc).__name__, time.perf_counter() - t0))
                    break
                results.append((status, time.perf_counter() - t0))
            proxy.resume()  # lets a request stuck on Redis finish before the server stops
    finally:
        cleanup(srv, direct, prefix)
    return results


def test_a_hung_redis_does_not_hang_the_vote_path(sqlite_url, bundle_dir, proxy, direct):
    """BUG (fails on the present code).  With the storage URL the docs give
    (``redis://127.0.0.1:6379``) redis-py has no socket timeout: when Redis stops answering
    without closing connections (frozen, swapping, a network partition, a fail-over) the
    first rate-limit call of every request waits forever and the fallback to memory never
    happens.  Measured under gunicorn -w 2 (default --timeout 30): every vote took 30.1-30.9 s
    and ended in HTTP 500 (WORKER TIMEOUT, the worker aborted in ``sock.recv``), and the
    replacement workers hang the same way, so the study stops until Redis answers again.

    Fix: a connect and a reply timeout for the storage, in the URL
    (``?socket_connect_timeout=0.5&socket_timeout=0.5``, measured in the next test) or,
    better, by default in ``install_limits``: ``Limiter(..., storage_options=
    {"socket_connect_timeout": 0.5, "socket_timeout": 0.5})`` for redis URLs (Redis answers
    in well under a millisecond on a healthy network)."""
    results = hung_redis_votes(
        sqlite_url, bundle_dir, proxy, direct, f"redis://127.0.0.1:{proxy.port}", timeout=5
    )
    print(f"\nvotes with Redis hung, no socket timeout: {results}")
    assert all(status == 200 for status, _ in results), results
    assert max(took for _, took in results) < 2.0, results


def test_socket_timeouts_in_the_storage_url_bound_a_hung_redis(
    sqlite_url, bundle_dir, proxy, direct
):
    """The setting that fixes the test above, measured: the first vote after Redis hangs
    waits for one reply timeout (0.5 s), the next ones run on memory at full speed."""
    results = hung_redis_votes(
        sqlite_url, bundle_dir, proxy, direct, proxy.url + TIMEOUTS, timeout=10
    )
    print(f"\nvotes with Redis hung, 0.5 s socket timeouts: {results}")
    assert [status for status, _ in results] == [200] * 6, results
    first, rest = results[0][1], [took for _, took in results[1:]]
    assert 0.4 < first < 2.0, results
    assert max(rest) < 0.5, results
