"""A study's configuration file: the facts its consent page states, and its Prolific study.

``normlime create-study --config study.toml`` reads it, validates every field here (one
readable line on a mistake) and stores it as JSON in ``studies.config``.  A live study
refuses to be created, and its entry links refuse participants, without the consent facts
an ethics board asks for::

    [consent]
    researcher = "Dr Ada Example"
    institution = "Example University, School of Computing"
    contact = "ada.example@example.edu"
    ethics = "EX-REC-2026-117 (Example University Research Ethics Committee)"
    pay = "GBP 2.50 on completion"
    minutes = 12              # the expected duration
    keep = "until 2031-12-31, then deleted"   # how long the answers are kept

    [design]                  # optional; default: the preference study (pick the best map)
    task = "forward"          # forward, distinction or agreement (docs/designs.md)
    conditions = ["none", "normlime", "smoothgrad"]   # between participants
    learn_items = 8           # forward simulation's learning phase
    test_items = 16
    attention_checks = 2
    explain_in_test = false   # forward: explanations in the learning phase only

    [prolific]                # only for ``normlime prolific create``
    title = "Which picture explains the digit best?"
    description = "Look at 25 sets of four pictures and pick the most helpful one."
    reward_cents = 250        # per finished participant, in the account's currency
    places = 100
    devices = ["desktop"]     # desktop, tablet, mobile

Debug and sandbox studies may leave ``[consent]`` out: their pages then say that the study
is a test.  Unknown keys are refused, so a misspelt field never silently disappears.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

__all__ = [
    "ConfigError",
    "CONSENT_FIELDS",
    "load_config",
    "parse_config",
    "consent_facts",
    "missing_consent",
]

#: field -> (what it is, as an error names it)
CONSENT_FIELDS = {
    "researcher": "the researcher responsible for the study",
    "institution": "the researcher's institution",
    "contact": "an e-mail address participants can write to",
    "ethics": "the ethics approval's reference",
    "pay": "what a participant who finishes is paid",
    "minutes": "the expected duration in minutes",
    "keep": "how long the answers are kept",
}
_PROLIFIC_FIELDS = {"title", "description", "reward_cents", "places", "devices", "internal_name"}
_DEVICES = ("desktop", "tablet", "mobile")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,63}")
_MAX_TEXT = 400


class ConfigError(ValueError):
    """A study configuration that cannot be used (one readable line)."""


def load_config(path: str | Path) -> dict:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"study configuration {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"study configuration {path} cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"study configuration {path} is not valid TOML ({exc})") from None
    try:
        return parse_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"study configuration {path}: {exc}") from None


def parse_config(raw: dict) -> dict:
    """The validated configuration: ``{"consent": {...}, "prolific": {...}}`` (either may
    be absent)."""
    unknown = sorted(set(raw) - {"consent", "prolific", "design"})
    if unknown:
        raise ConfigError(
            f"unknown section {unknown[0]!r} (expected [consent], [design], [prolific])"
        )
    out = {}
    if "design" in raw:
        out["design"] = _design(_table(raw, "design"))
    if "consent" in raw:
        out["consent"] = _consent(_table(raw, "consent"))
    if "prolific" in raw:
        out["prolific"] = _prolific(_table(raw, "prolific"))
    return out


def _table(raw: dict, name: str) -> dict:
    value = raw[name]
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _text(section: str, key: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{section}.{key} must be a non-empty string")
    value = " ".join(value.split())
    if len(value) > _MAX_TEXT:
        raise ConfigError(f"{section}.{key} is longer than {_MAX_TEXT} characters")
    return value


def _count(section: str, key: str, value, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{section}.{key} must be a whole number from {low} to {high}")
    return value


def _consent(table: dict) -> dict:
    unknown = sorted(set(table) - set(CONSENT_FIELDS))
    if unknown:
        raise ConfigError(f"unknown field consent.{unknown[0]}")
    missing = [k for k in CONSENT_FIELDS if k not in table]
    if missing:
        raise ConfigError(
            "[consent] lacks " + ", ".join(f"{k} ({CONSENT_FIELDS[k]})" for k in missing)
        )
    out = {k: _text("consent", k, table[k]) for k in CONSENT_FIELDS if k != "minutes"}
    out["minutes"] = _count("consent", "minutes", table["minutes"], low=1, high=600)
    if not _EMAIL.fullmatch(out["contact"]):
        raise ConfigError(f"consent.contact must be an e-mail address, got {out['contact']!r}")
    return out


def _prolific(table: dict) -> dict:
    unknown = sorted(set(table) - _PROLIFIC_FIELDS)
    if unknown:
        raise ConfigError(f"unknown field prolific.{unknown[0]}")
    for key in ("title", "description", "reward_cents", "places"):
        if key not in table:
            raise ConfigError(f"[prolific] lacks {key}")
    out = {
        "title": _text("prolific", "title", table["title"]),
        "description": _text("prolific", "description", table["description"]),
        "reward_cents": _count("prolific", "reward_cents", table["reward_cents"], low=1,
                               high=100_000),
        "places": _count("prolific", "places", table["places"], low=1, high=100_000),
    }  # fmt: skip
    if "internal_name" in table:
        out["internal_name"] = _text("prolific", "internal_name", table["internal_name"])
    devices = table.get("devices", ["desktop"])
    if (
        not isinstance(devices, list)
        or not devices
        or any(d not in _DEVICES for d in devices)
        or len(set(devices)) != len(devices)
    ):
        raise ConfigError(f"prolific.devices must be a list of {', '.join(_DEVICES)}")
    out["devices"] = devices
    return out


TASKS = ("preference", "forward", "distinction", "agreement")
_DESIGN_FIELDS = {"task", "conditions", "learn_items", "test_items", "attention_checks",
                  "explain_in_test"}  # fmt: skip


def _design(table: dict) -> dict:
    unknown = sorted(set(table) - _DESIGN_FIELDS)
    if unknown:
        raise ConfigError(f"unknown field design.{unknown[0]}")
    task = table.get("task", "preference")
    if task not in TASKS:
        raise ConfigError(f"design.task must be one of {', '.join(TASKS)}, got {task!r}")
    if task == "preference":
        if set(table) - {"task"}:
            raise ConfigError("the preference design takes its survey from the maps bundle; "
                              "[design] has only task = \"preference\" for it")  # fmt: skip
        return {"task": task}
    conditions = table.get("conditions", ["none"])
    if (
        not isinstance(conditions, list)
        or len(conditions) < 2
        or any(not isinstance(c, str) or not re.fullmatch(r"[a-z0-9_-]{1,32}", c)
               for c in conditions)
        or len(set(conditions)) != len(conditions)
    ):  # fmt: skip
        raise ConfigError(
            "design.conditions must list at least two distinct names: \"none\" (no "
            "explanation) and the methods shown"
        )
    out = {
        "task": task,
        "conditions": conditions,
        "learn_items": _count("design", "learn_items", table.get("learn_items",
                              8 if task == "forward" else 0), low=0, high=100),
        "test_items": _count("design", "test_items", table.get("test_items", 16), low=2,
                             high=300),
        "attention_checks": _count("design", "attention_checks",
                                   table.get("attention_checks", 2), low=0, high=20),
    }  # fmt: skip
    if task != "forward" and out["learn_items"]:
        raise ConfigError("design.learn_items is for the forward task's learning phase")
    explain = table.get("explain_in_test", False)
    if not isinstance(explain, bool):
        raise ConfigError("design.explain_in_test must be true or false")
    out["explain_in_test"] = explain
    return out


def consent_facts(config_json: str | None) -> dict | None:
    """The stored consent facts of a study, or None when it has none."""
    return json.loads(config_json or "{}").get("consent")


def missing_consent(mode: str, config: dict) -> str | None:
    """Why a study in ``mode`` cannot run with ``config`` (None when it can)."""
    if mode == "live" and "consent" not in config:
        return (
            "a live study needs its consent facts: give --config with a [consent] table "
            "(" + ", ".join(CONSENT_FIELDS) + ")"
        )
    return None
