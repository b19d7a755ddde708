"""A local stand-in of Prolific's API: the endpoints ``normlime prolific`` uses, with faults.

Served by ``http.server`` from a thread (``with StandIn() as api: api.url``).  It keeps the
state the tests assert on:

- studies: created as drafts (``UNPUBLISHED``); ``PUBLISH`` makes a draft ``ACTIVE``,
  ``PAUSE`` an active study ``PAUSED``, ``START`` a paused one ``ACTIVE`` again; the same
  transition twice is answered with the study unchanged (idempotent), any other is a 400;
- submissions, added by the test (:meth:`StandIn.add_submission`), listed ``page_size`` at a
  time with ``_links.next.href`` until it is null; ``APPROVE`` moves ``AWAITING REVIEW`` to
  ``APPROVED`` (again: unchanged), anything else is a 400;
- bulk bonuses: set up from ``csv_bonuses`` (every participant must have a submission in
  the study, else 400), then paid by ``POST /api/v1/bulk-bonus-payments/{id}/pay/``, which
  is **not idempotent**: every call counts a payment (:meth:`StandIn.payments`), as
  Prolific's documentation warns it pays again;
- ``GET /api/v1/bulk-bonus-payments/{id}/``: the bulk bonus's state (``SET_UP``, then
  ``PAID``).  **Not in Prolific's documentation**: it stands for the state check the
  payment's recovery needs; ``state_endpoint=False`` answers it 404, as the real API may.

Faults (:meth:`StandIn.fault`), consumed in order by the requests they match:

``429``           refused unprocessed, with ``Retry-After``
``500``/``503``   refused unprocessed with that status
``drop``          the connection closes without an answer, nothing applied
``apply-drop``    applied, then the connection closes without an answer
``apply-delay``   applied, then the answer comes ``delay`` seconds late (the client has
                  timed out by then)
``apply-500``     applied, then answered 500 (a gateway losing the backend's answer)

Every request is recorded (method, path, JSON body, Authorization header) in ``requests``.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["StandIn", "Recorded"]

_TRANSITIONS = {
    "PUBLISH": ({"UNPUBLISHED"}, "ACTIVE"),
    "PAUSE": ({"ACTIVE"}, "PAUSED"),
    "START": ({"PAUSED"}, "ACTIVE"),
}
_REQUIRED = (
    "name",
    "description",
    "external_study_url",
    "prolific_id_option",
    "completion_codes",
    "estimated_completion_time",
    "reward",
    "total_available_places",
)


@dataclass
class Recorded:
    method: str
    path: str
    body: dict | None
    authorization: str | None


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern
    kind: str
    times: int
    retry_after: str
    delay: float


def _new_id() -> str:
    return secrets.token_hex(12)  # Prolific ids are 24 hexadecimal characters


class StandIn:
    def __init__(
        self, token: str = "standin-token", *, page_size: int = 2, state_endpoint: bool = True
    ):
        self.token, self.page_size, self.state_endpoint = token, page_size, state_endpoint
        self.studies: dict[str, dict] = {}
        self.submissions: dict[str, dict] = {}
        self.bulk: dict[str, dict] = {}
        self.requests: list[Recorded] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.standin = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------------- test helpers

    def fault(
        self,
        method: str,
        path_pattern: str,
        kind: str,
        *,
        times: int = 1,
        retry_after: str = "1",
        delay: float = 1.0,
    ) -> None:
        self._faults.append(
            _Fault(method, re.compile(path_pattern), kind, times, retry_after, delay)
        )

    def add_submission(
        self,
        study_id: str,
        participant_id: str,
        *,
        status: str = "AWAITING REVIEW",
        code: str | None = None,
    ) -> str:
        sid = _new_id()
        self.submissions[sid] = {
            "id": sid,
            "study_id": study_id,
            "participant_id": participant_id,
            "status": status,
            "study_code": code,
            "started_at": "2026-12-07T10:00:00Z",
        }
        return sid

    def payments(self, bulk_id: str) -> int:
        return self.bulk[bulk_id]["payments"]

    def sent(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # ------------------------------------------------------------------------- serving

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for f in self._faults:
            if f.times > 0 and f.method == method and f.pattern.search(path):
                f.times -= 1
                return f
        return None

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(req.path)
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        auth = req.headers.get("Authorization")
        with self._lock:
            self.requests.append(Recorded(req.command, req.path, body, auth))
            if auth != f"Token {self.token}":
                return _answer(req, 401, {"error": "Invalid token."})
            fault = self._take_fault(req.command, parts.path)
            if fault and fault.kind in ("429", "500", "503", "drop"):
                if fault.kind == "drop":
                    return _drop(req)
                headers = {"Retry-After": fault.retry_after} if fault.kind == "429" else {}
                return _answer(req, int(fault.kind), {"error": "fault"}, headers)
            status, payload = self._route(req.command, parts.path, parse_qs(parts.query), body)
        if fault is None:
            return _answer(req, status, payload)
        if fault.kind == "apply-drop":
            return _drop(req)
        if fault.kind == "apply-500":
            return _answer(req, 500, {"error": "upstream failed"})
        time.sleep(fault.delay)  # apply-delay: the client gave up waiting meanwhile
        return _answer(req, status, payload)

    def _route(self, method, path, query, body) -> tuple[int, dict]:
        routes = [
            ("GET", r"/api/v1/studies/", self._list_studies),
            ("POST", r"/api/v1/studies/", self._create_study),
            ("GET", r"/api/v1/studies/(\w+)/", self._get_study),
            ("POST", r"/api/v1/studies/(\w+)/transition/", self._transition_study),
            ("GET", r"/api/v1/studies/(\w+)/submissions/", self._list_submissions),
            ("GET", r"/api/v1/submissions/(\w+)/", self._get_submission),
            ("POST", r"/api/v1/submissions/(\w+)/transition/", self._transition_submission),
            ("POST", r"/api/v1/submissions/bonus-payments/", self._set_up_bonus),
            ("POST", r"/api/v1/bulk-bonus-payments/(\w+)/pay/", self._pay),
            ("GET", r"/api/v1/bulk-bonus-payments/(\w+)/", self._bulk_state),
        ]
        for m, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if m == method and match:
                return handler(*match.groups(), query=query, body=body or {})
        return 404, {"error": "Not found."}

    # ------------------------------------------------------------------------- studies

    def _list_studies(self, *, query, body):
        return 200, {"results": [dict(s) for s in self.studies.values()]}

    def _create_study(self, *, query, body):
        missing = [k for k in _REQUIRED if body.get(k) in (None, "", [])]
        if missing:
            return 400, {"error": f"missing fields: {', '.join(missing)}"}
        if "{{%PROLIFIC_PID%}}" not in body["external_study_url"]:
            return 400, {"error": "external_study_url lacks {{%PROLIFIC_PID%}}"}
        sid = _new_id()
        self.studies[sid] = {**body, "id": sid, "status": "UNPUBLISHED"}
        return 201, dict(self.studies[sid])

    def _get_study(self, sid, *, query, body):
        study = self.studies.get(sid)
        return (200, dict(study)) if study else (404, {"error": "Not found."})

    def _transition_study(self, sid, *, query, body):
        study = self.studies.get(sid)
        if study is None:
            return 404, {"error": "Not found."}
        sources, target = _TRANSITIONS.get(body.get("action"), (set(), None))
        if target is not None and study["status"] == target:
            return 200, dict(study)
        if study["status"] not in sources:
            return 400, {"error": f"cannot {body.get('action')} a {study['status']} study"}
        study["status"] = target
        return 200, dict(study)

    def _list_submissions(self, sid, *, query, body):
        if sid not in self.studies:
            return 404, {"error": "Not found."}
        subs = [s for s in self.submissions.values() if s["study_id"] == sid]
        page = int(query.get("page", ["1"])[0])
        chunk = subs[(page - 1) * self.page_size : page * self.page_size]
        more = page * self.page_size < len(subs)
        base = f"{self.url}/api/v1/studies/{sid}/submissions/"
        return 200, {
            "results": [{k: v for k, v in s.items() if k != "study_id"} for s in chunk],
            "_links": {
                "self": {"href": f"{base}?page={page}"},
                "next": {"href": f"{base}?page={page + 1}" if more else None},
            },
            "meta": {"count": len(subs)},
        }

    # ------------------------------------------------------------------------- submissions

    def _get_submission(self, sid, *, query, body):
        sub = self.submissions.get(sid)
        return (200, dict(sub)) if sub else (404, {"error": "Not found."})

    def _transition_submission(self, sid, *, query, body):
        sub = self.submissions.get(sid)
        if sub is None:
            return 404, {"error": "Not found."}
        if body.get("action") != "APPROVE":
            return 400, {"error": "only APPROVE is stood in for"}
        if sub["status"] == "AWAITING REVIEW":
            sub["status"] = "APPROVED"
        elif sub["status"] != "APPROVED":
            return 400, {"error": f"cannot approve a {sub['status']} submission"}
        return 200, dict(sub)

    # ------------------------------------------------------------------------- bonuses

    def _set_up_bonus(self, *, query, body):
        study = body.get("study_id")
        if study not in self.studies:
            return 400, {"error": "unknown study_id"}
        people = {s["participant_id"] for s in self.submissions.values() if s["study_id"] == study}
        total = Decimal(0)
        for line in (body.get("csv_bonuses") or "").splitlines():
            pid, _, amount = line.partition(",")
            if pid not in people:
                return 400, {"error": f"{pid} did not take part in the study"}
            try:
                total += Decimal(amount)
            except InvalidOperation:
                return 400, {"error": f"bad amount {amount!r}"}
        bulk = _new_id()
        self.bulk[bulk] = {
            "id": bulk,
            "study": study,
            "csv_bonuses": body["csv_bonuses"],
            "total_amount": str(total),
            "status": "SET_UP",
            "payments": 0,
        }
        return 201, {k: v for k, v in self.bulk[bulk].items() if k != "payments"}

    def _pay(self, bulk, *, query, body):
        if bulk not in self.bulk:
            return 404, {"error": "Not found."}
        self.bulk[bulk]["payments"] += 1  # not idempotent: each call pays
        self.bulk[bulk]["status"] = "PAID"
        return 202, {}

    def _bulk_state(self, bulk, *, query, body):
        if not self.state_endpoint or bulk not in self.bulk:
            return 404, {"error": "Not found."}
        return 200, {k: v for k, v in self.bulk[bulk].items() if k != "payments"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.standin.handle(self)

    do_POST = do_GET

    def log_message(self, *args):  # keep the test output quiet
        pass


def _answer(req, status: int, payload: dict, headers: dict | None = None) -> None:
    data = json.dumps(payload).encode()
    try:
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(data)
    except OSError:  # the client stopped waiting (apply-delay)
        req.close_connection = True


def _drop(req) -> None:
    req.close_connection = True  # no status line at all: the client sees the connection end
