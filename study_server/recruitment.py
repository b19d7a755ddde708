"""Recruitment adapters: how a participant arrives and how they are sent back.

Adapters are per-study settings (JSON in ``studies.adapters``), so another panel fits
without code: give it a name, the query-parameter names it sends and a completion URL.

Two kinds exist:

``mturk``     MTurk ExternalQuestion: ``assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE`` means a
              preview; the finish is a form POST to ``{turkSubmitTo}/mturk/externalSubmit``
              carrying ``assignmentId`` and the completion code.
``redirect``  Prolific, CloudResearch Connect, a plain link, any other panel: the finish is
              a link to ``completion_url`` (``{code}`` is replaced by the completion code),
              or just the completion code when no URL is configured.  A redirect adapter may
              also name a ``screenout_url``: where a panel wants people it screened out
              (partial completes) sent.  The survey has no screen-out exit yet, so it is
              validated and stored for that exit, and never used instead of
              ``completion_url``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

__all__ = [
    "AdapterError",
    "Entry",
    "PREVIEW_ASSIGNMENT",
    "MTURK_SUBMIT_ORIGINS",
    "PROLIFIC_COMPLETION_URL",
    "CONNECT_COMPLETION_URL",
    "KNOWN_ADAPTERS",
    "check_url",
    "default_adapters",
    "optional_adapters",
    "validate_adapters",
    "load_adapters",
    "parse_entry",
    "borrowed_identity",
    "anonymous_beside_identified",
    "completion_action",
    "example_links",
]

PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"
#: where MTurk may tell us to post the finished assignment, per study mode
MTURK_SUBMIT_ORIGINS = {
    "live": ("https://www.mturk.com",),
    "sandbox": ("https://workersandbox.mturk.com",),
}
PROLIFIC_COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc={code}"
#: CloudResearch Connect's end-of-study redirect: its project's completion code in the path
CONNECT_COMPLETION_URL = "https://connect.cloudresearch.com/participant/project/{code}/complete"

_NAME_RE = re.compile(r"[a-z0-9_-]{1,32}")
_PARAM_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ID_RE = re.compile(r"[A-Za-z0-9_.:@+-]{1,128}")
_CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KINDS = ("mturk", "redirect")
_KEYS = {
    "kind",
    "worker_param",
    "worker_required",
    "assignment_param",
    "submit_param",
    "record_params",
    "completion_url",
    "completion_code",
    "screenout_url",
}


class AdapterError(ValueError):
    """Bad adapter settings or bad entry parameters (the message is shown as is)."""


@dataclass
class Entry:
    """What a participant's entry link told us."""

    adapter: str
    preview: bool = False
    worker_id: str | None = None
    assignment_id: str | None = None
    submit_to: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def params(self) -> dict[str, str]:
        """Flat form of everything recorded (signed into the consent form)."""
        out = {f"x.{k}": v for k, v in self.extra.items()}
        for key in ("worker_id", "assignment_id", "submit_to"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_params(cls, adapter: str, params: dict[str, str]) -> Entry:
        return cls(
            adapter=adapter,
            worker_id=params.get("worker_id"),
            assignment_id=params.get("assignment_id"),
            submit_to=params.get("submit_to"),
            extra={k[2:]: v for k, v in params.items() if k.startswith("x.")},
        )


def default_adapters(
    *,
    completion_code: str | None = None,
    prolific_url: str = PROLIFIC_COMPLETION_URL,
    optional: bool = False,
) -> dict[str, dict]:
    """MTurk, Prolific and a plain link, with their usual parameter names (the default set
    of a study); with ``optional=True`` also the panels a study gets only by name
    (:func:`optional_adapters`)."""
    adapters = {
        "mturk": {
            "kind": "mturk",
            "worker_param": "workerId",
            "worker_required": True,
            "assignment_param": "assignmentId",
            "submit_param": "turkSubmitTo",
            "record_params": ["hitId", "batch", "hit"],
        },
        "prolific": {
            "kind": "redirect",
            "worker_param": "PROLIFIC_PID",
            "worker_required": True,
            "assignment_param": "SESSION_ID",
            "record_params": ["STUDY_ID"],
            "completion_url": prolific_url,
            "completion_code": completion_code,
        },
        "link": {
            "kind": "redirect",
            # optional: a panel that appends ?pid=... gets one participation per pid
            "worker_param": "pid",
            "worker_required": False,
            "record_params": [],
            "completion_url": None,
            "completion_code": None,
        },
    }
    if optional:
        adapters.update(optional_adapters(completion_code=completion_code))
    return adapters


def optional_adapters(*, completion_code: str | None = None) -> dict[str, dict]:
    """Panels a study uses only when named (``create-study --adapter connect``), never by
    default, so that existing studies and their links stay as they are.

    CloudResearch Connect appends ``participantId``, ``assignmentId`` and ``projectId`` to
    the project link; the end-of-study redirect carries the project's completion code
    (which is why ``completion_code`` should be Connect's).  A ``screenout_url`` (Connect's
    partial-complete redirect) may be added as JSON settings; see the module doc.
    """
    return {
        "connect": {
            "kind": "redirect",
            "worker_param": "participantId",
            "worker_required": True,
            "assignment_param": "assignmentId",
            "record_params": ["projectId"],
            "completion_url": CONNECT_COMPLETION_URL,
            "completion_code": completion_code,
        },
    }


_CONTROL = re.compile(r"[\x00-\x20\x7f]")
#: the adapters every study can have by name (``create-study --adapter NAME``)
KNOWN_ADAPTERS = ("mturk", "prolific", "link", "connect")


def check_url(value: str, *, what: str, mode: str, max_len: int = 200) -> str:
    """A URL a platform or operator gave us: http(s), no control characters or spaces, at
    most ``max_len`` characters, and https for live studies."""
    if not isinstance(value, str) or len(value) > max_len or _CONTROL.search(value):
        raise AdapterError(f"{what} is not a valid URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AdapterError(f"{what} is not a valid URL")
    if mode == "live" and parts.scheme != "https":
        raise AdapterError(f"{what} must be an https:// URL for a live study")
    return value


def validate_adapters(adapters: dict, *, mode: str = "debug") -> dict[str, dict]:
    """Check adapter settings; returns them normalised or raises AdapterError."""
    if not isinstance(adapters, dict) or not adapters:
        raise AdapterError("a study needs at least one recruitment adapter")
    out = {}
    for name, cfg in adapters.items():
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise AdapterError(f"adapter name {name!r} must match [a-z0-9_-]{{1,32}}")
        if not isinstance(cfg, dict):
            raise AdapterError(f"adapter {name!r}: settings must be a JSON object")
        unknown = set(cfg) - _KEYS - {"name"}
        if unknown:
            raise AdapterError(f"adapter {name!r}: unknown setting(s) {', '.join(sorted(unknown))}")
        kind = cfg.get("kind", "redirect")
        if kind not in _KINDS:
            raise AdapterError(f"adapter {name!r}: kind must be one of {', '.join(_KINDS)}")
        clean = {"kind": kind, "worker_required": bool(cfg.get("worker_required", True))}
        for key in ("worker_param", "assignment_param", "submit_param"):
            value = cfg.get(key)
            if value is not None and not (isinstance(value, str) and _PARAM_RE.fullmatch(value)):
                raise AdapterError(f"adapter {name!r}: {key} {value!r} is not a parameter name")
            clean[key] = value
        record = cfg.get("record_params") or []
        if not isinstance(record, list) or not all(
            isinstance(p, str) and _PARAM_RE.fullmatch(p) for p in record
        ):
            raise AdapterError(f"adapter {name!r}: record_params must be a list of names")
        clean["record_params"] = list(record)
        if kind == "mturk":
            for key in ("worker_param", "assignment_param", "submit_param"):
                if not clean[key]:
                    raise AdapterError(f"adapter {name!r}: an mturk adapter needs {key}")
            if cfg.get("screenout_url") is not None:
                raise AdapterError(f"adapter {name!r}: screenout_url is for redirect adapters")
        else:
            url = cfg.get("completion_url")
            if url is not None:
                try:
                    check_url(url, what=f"adapter {name!r}: completion_url", mode=mode, max_len=500)
                except AdapterError as exc:
                    raise AdapterError(f"{exc} (http(s), no spaces)") from None
                try:
                    url.format(code="X")
                except (KeyError, IndexError, ValueError):
                    raise AdapterError(
                        f"adapter {name!r}: completion_url may only use the {{code}} placeholder"
                    ) from None
            code = cfg.get("completion_code")
            if code is not None and not (isinstance(code, str) and _CODE_RE.fullmatch(code)):
                raise AdapterError(f"adapter {name!r}: completion_code must match [A-Za-z0-9_-]+")
            clean["completion_url"] = url
            clean["completion_code"] = code
            if cfg.get("screenout_url") is not None:
                clean["screenout_url"] = _screenout_url(name, cfg["screenout_url"], mode)
        if clean["worker_required"] and not clean["worker_param"]:
            raise AdapterError(f"adapter {name!r}: worker_required needs a worker_param")
        out[name] = clean
    return out


def _screenout_url(name: str, url, mode: str) -> str:
    """A panel's screen-out (partial complete) redirect: a plain URL, checked like a
    completion URL; it carries no code, so no placeholder either."""
    check_url(url, what=f"adapter {name!r}: screenout_url", mode=mode, max_len=500)
    if "{" in url or "}" in url:
        raise AdapterError(f"adapter {name!r}: screenout_url takes no placeholder")
    return url


def load_adapters(raw: str) -> dict[str, dict]:
    return json.loads(raw)


def _submit_origin(value: str, mode: str) -> str:
    check_url(value, what="turkSubmitTo", mode=mode)
    value = value.rstrip("/")
    parts = urlsplit(value)
    if parts.query or parts.fragment:
        raise AdapterError("turkSubmitTo is not a valid URL")
    allowed = MTURK_SUBMIT_ORIGINS.get(mode)
    if allowed is not None and value not in allowed:
        raise AdapterError(
            f"turkSubmitTo {value!r} is not MTurk's {mode} site for this {mode} study"
        )
    return value


def parse_entry(name: str, cfg: dict, mode: str, args) -> Entry:
    """Read an entry link's query parameters (``args``: a mapping) for adapter ``name``."""
    entry = Entry(adapter=name)

    def get(param: str | None) -> str | None:
        if not param:
            return None
        value = args.get(param)
        if value is None or value == "":
            return None
        if not _ID_RE.fullmatch(value):
            raise AdapterError(f"the link parameter {param} has an invalid value")
        return value

    if cfg["kind"] == "mturk":
        assignment = args.get(cfg["assignment_param"])
        if assignment == PREVIEW_ASSIGNMENT:
            entry.preview = True
            return entry
    entry.worker_id = get(cfg.get("worker_param"))
    if cfg.get("worker_required") and entry.worker_id is None:
        raise AdapterError(f"this link needs a {cfg['worker_param']} parameter")
    entry.assignment_id = get(cfg.get("assignment_param"))
    if cfg["kind"] == "mturk":
        if entry.assignment_id is None:
            raise AdapterError(f"this link needs an {cfg['assignment_param']} parameter")
        submit = args.get(cfg["submit_param"])
        if not submit:
            raise AdapterError(f"this link needs a {cfg['submit_param']} parameter")
        entry.submit_to = _submit_origin(submit, mode)
    for param in cfg.get("record_params", []):
        value = get(param)
        if value is not None:
            entry.extra[param] = value
    return entry


def borrowed_identity(adapters: dict, name: str, args) -> str | None:
    """The worker id an anonymous entry carries under another adapter's parameter name.

    A plain link reached by editing a panel's link (``/s/KEY?workerId=...``, the MTurk
    link without ``/mturk``) still names the person: the parameter names of the study's
    identified adapters are read too, so that one person keeps one participation.
    Raises AdapterError for an invalid value; None when no such parameter is present.
    """
    for other, cfg in adapters.items():
        param = cfg.get("worker_param")
        if other == name or not cfg.get("worker_required") or not param:
            continue
        value = args.get(param)
        if value:
            if not _ID_RE.fullmatch(value):
                raise AdapterError(f"the link parameter {param} has an invalid value")
            return value
    return None


def anonymous_beside_identified(adapters: dict) -> tuple[list[str], list[str]]:
    """(anonymous adapters, identified adapters) of a study, for create-study's warning."""
    anonymous = sorted(n for n, c in adapters.items() if not c.get("worker_required"))
    identified = sorted(n for n, c in adapters.items() if c.get("worker_required"))
    return anonymous, identified


def completion_action(cfg: dict, *, code: str, assignment_id: str | None, submit_to: str | None):
    """What the completion page offers: an MTurk form, a panel link, or the code alone.

    An MTurk form is offered only with the assignment it submits and a submission target
    (never a form whose action is not a URL); without them, the code alone."""
    if cfg["kind"] == "mturk":
        if not (assignment_id and submit_to and submit_to.startswith(("https://", "http://"))):
            return {"kind": "code", "code": code}
        return {
            "kind": "mturk",
            "action": f"{submit_to}/mturk/externalSubmit",
            "assignment_id": assignment_id,
            "code": code,
        }
    shown = cfg.get("completion_code") or code
    if cfg.get("completion_url"):
        return {"kind": "redirect", "url": cfg["completion_url"].format(code=shown), "code": shown}
    return {"kind": "code", "code": shown}


def example_links(base_url: str, study_key: str, adapters: dict, *, worker: str | None) -> dict:
    """Entry links per adapter, filled with example ids (for the operator's console);
    ``worker=None``: the bare links, to which the platform adds each participant's ids."""
    base = base_url.rstrip("/")
    links = {}
    for name, cfg in adapters.items():
        path = f"{base}/s/{study_key}" + ("" if name == "link" else f"/{name}")
        params = {}
        if worker is None:
            pass
        elif cfg["kind"] == "mturk":
            params = {
                cfg["worker_param"]: worker,
                cfg["assignment_param"]: f"{worker}_ASSIGNMENT",
                "hitId": "DEBUG_HIT",
                cfg["submit_param"]: f"{base}/_debug/mturk",
            }
        elif cfg.get("worker_required"):
            params[cfg["worker_param"]] = worker
            if cfg.get("assignment_param"):
                params[cfg["assignment_param"]] = f"{worker}_SESSION"
            for p in cfg.get("record_params", []):
                params[p] = "DEBUG"
        links[name] = path + (f"?{urlencode(params)}" if params else "")
    return links
