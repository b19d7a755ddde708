"""Many participants answering at once against a real HTTP server (SQLite and PostgreSQL):
the database ends up holding exactly the answers that were acknowledged, once each."""

from __future__ import annotations

import http.client
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urlsplit

import pytest

from tests.server_fixtures import LiveServer, form_action, hidden_fields, make_server

N_PARTICIPANTS = 16


class Http:
    def __init__(self, base: str):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port

    def request(self, method: str, path: str, data: dict | None = None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            body = urlencode(data) if data is not None else None
            headers = {"Content-Type": "application/x-www-form-urlencoded"} if data else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read().decode()
        finally:
            conn.close()


def both(fn_a, fn_b):
    """Run two calls as simultaneously as threads allow."""
    barrier = threading.Barrier(2)
    out = [None, None]

    def go(i, fn):
        barrier.wait()
        out[i] = fn()

    threads = [threading.Thread(target=go, args=(i, f)) for i, f in enumerate((fn_a, fn_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def participant(http: Http, key: str, i: int, rng: random.Random) -> dict:
    entry = f"/s/{key}/mturk?" + urlencode(
        {
            "workerId": f"W{i}",
            "assignmentId": f"A{i}",
            "hitId": "H",
            "turkSubmitTo": "https://workersandbox.mturk.com",
        }
    )
    # two tabs consent at the same moment: one participation
    pages = [http.request("GET", entry)[2] for _ in range(2)]
    consents = both(
        *[
            (lambda p=p: http.request("POST", form_action(p), {**hidden_fields(p), "agree": "yes"}))
            for p in pages
        ]
    )
    homes = {c[1]["Location"] for c in consents}
    assert [c[0] for c in consents] == [303, 303] and len(homes) == 1
    home = homes.pop().replace(f"http://{http.host}:{http.port}", "")
    assert http.request("POST", home + "/start")[0] == 303
    status, _, page = http.request("GET", home)
    assert status == 200
    acknowledged = {}
    for position in range(1, 26):
        fields = hidden_fields(page)
        assert int(fields["q"]) == position
        a = rng.randint(1, 4)
        kind = rng.choice(("single", "duplicate", "conflict"))
        if kind == "single":
            results = [(a, http.request("POST", home + "/answer", {**fields, "c": a}))]
        else:
            b = a if kind == "duplicate" else (a % 4) + 1
            results = list(
                zip(
                    (a, b),
                    both(
                        lambda a=a, f=fields: http.request("POST", home + "/answer", {**f, "c": a}),
                        lambda b=b, f=fields: http.request("POST", home + "/answer", {**f, "c": b}),
                    ),
                    strict=True,
                )
            )
        ok = [(c, r) for c, r in results if r[0] == 200]
        statuses = sorted(r[0] for _, r in results)
        if kind == "conflict":
            assert statuses == [200, 409], statuses  # exactly one of two different answers
        else:
            assert set(statuses) == {200}, statuses
        acknowledged[position] = ok[0][0]
        page = ok[0][1][2]
    assert "Thank you" in page
    return {"token": home.rsplit("/", 1)[-1], "answers": acknowledged}


@pytest.mark.timeout(300)
def test_concurrent_participants_store_exactly_what_was_acknowledged(db_url, bundle_dir):
    srv = make_server(db_url, bundle_dir)
    with LiveServer(srv.app) as live:
        http = Http(live.url)
        with ThreadPoolExecutor(N_PARTICIPANTS) as pool:
            futures = [
                pool.submit(participant, http, srv.study_key, i, random.Random(i))
                for i in range(N_PARTICIPANTS)
            ]
            results = [f.result() for f in futures]
    stored = srv.rows(
        "SELECT p.token, r.position, r.choice FROM responses r "
        "JOIN participants p ON p.id = r.participant_id"
    )
    expected = {(r["token"], pos, c) for r in results for pos, c in r["answers"].items()}
    assert len(stored) == len(set(stored)) == N_PARTICIPANTS * 25
    assert set(stored) == expected
    assert srv.scalar("SELECT count(*) FROM participants") == N_PARTICIPANTS
    assert srv.scalar("SELECT count(*) FROM participants WHERE completed_at IS NULL") == 0
    assert srv.scalar("SELECT count(*) FROM events WHERE kind = 'completed'") == N_PARTICIPANTS
    srv.engine.dispose()
    with srv.app.app_context():
        from study_server.models import db

        db.engine.dispose()
