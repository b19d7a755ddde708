"""The one boundary where request fields are parsed.

Every form a page of ours posts, and every query string a route reads, is described here
by a schema: the names it may carry and, per name, what a value may be (ASCII digits in a
range, or a pattern with a bounded length).  A request with an unknown or repeated name,
an over-long value, non-ASCII digits (``²``, ``٣``) or too many fields is refused with
HTTP 400 before anything is read from or written to the database.

Entry links are the exception on one point: recruitment platforms append parameters of
their own, so an entry link's unknown parameters are ignored (never stored); the ones an
adapter reads are validated by :mod:`study_server.recruitment`.  Their number and sizes
are still bounded here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .survey import MAX_ITEMS, MAX_OPTIONS

__all__ = [
    "FieldError",
    "Digits",
    "Text",
    "parse",
    "within",
    "bounded_query",
    "ANSWER",
    "TASK_ANSWER",
    "START",
    "CONSENT",
    "ADMIN_LOGIN",
    "ADMIN_ACTIVE",
    "ADMIN_LOGOUT",
    "ADMIN_EXPORT",
    "NO_FIELDS",
    "MAX_FIELDS",
    "MAX_VALUE",
    "MAX_POSITION",
    "MAX_CHOICE",
]

MAX_FIELDS = 32
#: the longest survey (a preference survey, or a help study's learn + test + checks)
MAX_POSITION = MAX_ITEMS
#: the most answers an item offers: a preference survey's options, a forward-simulation
#: item's classes (checked against the item's own count once it is read)
MAX_CHOICE = 1000
MAX_VALUE = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FieldError(ValueError):
    """A malformed request field (the message is shown to the participant as is)."""


@dataclass(frozen=True)
class Digits:
    """A whole number written in ASCII digits, ``low <= value <= high``."""

    low: int
    high: int

    def __call__(self, name: str, raw: str) -> int:
        if len(raw) > len(str(self.high)) or not re.fullmatch(r"[0-9]+", raw, re.ASCII):
            raise FieldError(f"The form field {name!r} must be a number.")
        return within(name, int(raw), self.high, self.low)


def within(name: str, value: int, high: int, low: int = 1) -> int:
    """``value`` of field ``name`` when ``low <= value <= high``; for the bounds a schema
    cannot know, such as the number of options of the participant's survey."""
    if not low <= value <= high:
        raise FieldError(f"The form field {name!r} is out of range.")
    return value


@dataclass(frozen=True)
class Text:
    """A string matching ``pattern`` (whole), at most ``max_len`` characters."""

    pattern: str = r"[^\x00-\x1f\x7f]*"
    max_len: int = 256

    def __call__(self, name: str, raw: str) -> str:
        if len(raw) > self.max_len or not re.fullmatch(self.pattern, raw):
            raise FieldError(f"The form field {name!r} is malformed.")
        return raw


@dataclass(frozen=True)
class Schema:
    fields: dict
    #: names that must be present
    required: frozenset = frozenset()
    #: prefix -> validator, for families of names (the consent form's signed p.* fields)
    prefixed: tuple = ()


def parse(values, schema: Schema) -> dict:
    """Validate a MultiDict (``request.form`` or ``request.args``) against ``schema``."""
    keys = list(values.keys())
    if len(keys) > MAX_FIELDS:
        raise FieldError("The request has too many fields.")
    out = {}
    for name in keys:
        raws = values.getlist(name)
        if len(raws) != 1:
            raise FieldError(f"The form field {name!r} is repeated.")
        validator = schema.fields.get(name)
        if validator is None:
            validator = next((v for p, v in schema.prefixed if name.startswith(p)), None)
        if validator is None or len(name) > 80:
            raise FieldError(f"The form field {name[:80]!r} is not expected here.")
        out[name] = validator(name, raws[0])
    missing = sorted(schema.required - set(out))
    if missing:
        raise FieldError(f"The form field {missing[0]!r} is missing.")
    return out


def bounded_query(args) -> None:
    """An entry link's query string: bounded in size, no control characters anywhere."""
    keys = list(args.keys())
    if len(keys) > MAX_FIELDS:
        raise FieldError("The link has too many parameters.")
    for name in keys:
        raws = args.getlist(name)
        if len(raws) != 1 and name:
            raise FieldError(f"The link parameter {name[:80]!r} is repeated.")
        for raw in (name, *raws):
            if len(raw) > MAX_VALUE or _CONTROL.search(raw):
                raise FieldError("The link has a malformed parameter.")


_HEX24 = Text(r"[0-9a-f]{24}", 24)
_CSRF = Text(r"[A-Za-z0-9_.\-]{1,200}", 200)
NO_FIELDS = Schema({})
START = NO_FIELDS
#: the item page's form: question, choice (the clicked button), signature, and (set by the
#: page's script) the ms its images took to load; the bounds fit every survey design, the
#: participant's own are checked once the survey is known
ANSWER = Schema(
    {"q": Digits(1, MAX_ITEMS), "c": Digits(1, MAX_OPTIONS), "f": _HEX24,
     "l": Digits(0, 3_600_000)},
    required=frozenset({"q", "c", "f"}),
)  # fmt: skip
#: the same on a server that also runs help studies: a forward-simulation item offers
#: one answer per class (the item's own count is checked once it is read)
TASK_ANSWER = Schema({**ANSWER.fields, "c": Digits(1, MAX_CHOICE)}, required=ANSWER.required)
#: the consent page: the signed entry parameters travel as p.NAME fields
CONSENT = Schema(
    {
        "agree": Text("yes", 3),
        "nonce": Text(r"[A-Za-z0-9_-]{22}", 22),
        "sig": Text(r"[0-9a-f]{32}", 32),
    },
    required=frozenset({"nonce", "sig"}),
    prefixed=(("p.", Text(r"[^\x00-\x1f\x7f]{1,200}", 200)),),
)
ADMIN_LOGIN = Schema(
    {"password": Text(max_len=256), "csrf_token": _CSRF}, required=frozenset({"password"})
)
ADMIN_ACTIVE = Schema(
    {"active": Text("[01]", 1), "csrf_token": _CSRF,
     # closing: the study's name typed again on the confirmation page
     "confirm": Text(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}", 100)},
    required=frozenset({"active"}),
)  # fmt: skip
ADMIN_LOGOUT = Schema({"csrf_token": _CSRF})
ADMIN_EXPORT = Schema(
    {"include_debug": Text("[01]", 1), "study": Text(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}", 100)}
)
