"""What the consent page says the study keeps: derived from what a survey writes.

Every column a participation fills is declared here under one plain-language statement,
and the page lists exactly the statements that apply to the participant's route (with
its cookie, if any).  ``tests/test_server_consent.py`` runs surveys through every route
and fails when a stored column or a cookie is not declared, so the page cannot drift from
the tables.  IP addresses are not stored: they key the rate limits only, in memory or in
the limits storage, and are forgotten when the limit's window ends.
"""

from __future__ import annotations

from limits import parse_many

__all__ = ["STATEMENTS", "COLUMNS", "RESUME_COOKIE", "kept", "address_window_seconds"]

#: statement key -> what the page says (``{platform}`` is the route's platform name)
STATEMENTS = {
    "answers": "your answers: which picture you chose for each question, and where on the "
    "screen each picture was;",
    "times": "when you started and finished, how long each answer took, and how long each "
    "question's pictures took to load;",
    "platform_id": "the identifier {platform} passes to us, stored only as a keyed hash (a "
    "code from which the identifier cannot be read back), and its assignment or "
    "session number, so that you can be paid;",
    "raw_platform_id": "the identifier {platform} passes to us, as given (the researcher "
    "needs it to pay bonuses), and its assignment or session number;",
    "code": "the completion code you are shown at the end;",
    "group": "the study group you were placed in (which kind of pictures you were shown);",
    "survey": "a random participant number, the random seed that chose your questions, and "
    "the version of the pictures you saw.",
}

#: table.column -> statement key; every column a participation fills must be here
COLUMNS = {
    # bookkeeping written for every participant
    "participants.id": "survey",
    "participants.study_id": "survey",
    "participants.public_id": "survey",
    "participants.token": "survey",
    "participants.entry_nonce": "survey",
    "participants.adapter": "survey",
    "participants.mode": "survey",
    "participants.seed": "survey",
    "participants.survey_version": "survey",
    "participants.bundle_sha256": "survey",
    "participants.condition": "group",
    "participants.created_at": "times",
    "participants.started_at": "times",
    "participants.completed_at": "times",
    "participants.completion_code": "code",
    "participants.worker_key": "platform_id",
    "participants.raw_worker_id": "raw_platform_id",
    "participants.assignment_id": "platform_id",
    "participants.submit_to": "platform_id",
    "participants.entry_params": "platform_id",
    "items.id": "survey",
    "items.participant_id": "survey",
    "items.position": "answers",
    "items.is_check": "answers",
    "items.digit": "answers",
    "items.slots": "answers",
    "items.phase": "answers",
    "items.stimulus": "answers",
    "responses.id": "answers",
    "responses.participant_id": "answers",
    "responses.position": "answers",
    "responses.choice": "answers",
    "responses.chosen_method": "answers",
    "responses.chosen_role": "answers",
    "responses.shown_at": "times",
    "responses.answered_at": "times",
    "responses.response_ms": "times",
    "responses.images_ms": "times",
    "events.id": "survey",
    "events.at": "times",
    "events.kind": "survey",
    "events.study_id": "survey",
    "events.participant_id": "survey",
    # the event log's details, key by key (``param`` stands for every param.NAME)
    "events.detail.adapter": "survey",
    "events.detail.old_adapter": "survey",
    "events.detail.new_adapter": "survey",
    "events.detail.assignment_id": "platform_id",
    "events.detail.old": "platform_id",
    "events.detail.new": "platform_id",
    "events.detail.param": "platform_id",
}

#: the first-party cookie an anonymous plain-link participant gets (study_server.participant)
RESUME_COOKIE = "normlime_resume_{key}"
RESUME_DAYS = 30


def kept(*, identified: bool, raw_ids: bool, platform: str, grouped: bool = False) -> list[str]:
    """The statements for one route (a panel that sends an identifier, or an anonymous
    link) and design (``grouped``: conditions between participants)."""
    keys = ["answers", "times"]
    if identified:
        keys.append("raw_platform_id" if raw_ids else "platform_id")
    keys += ["code", "group", "survey"] if grouped else ["code", "survey"]
    return [STATEMENTS[k].format(platform=platform) for k in keys]


def address_window_seconds(cfg) -> int:
    """How long a client address may stay in the limits storage: the longest window of the
    limits keyed by address on the participant routes."""
    items = parse_many(cfg["ENTRY_RATE"]) + parse_many(cfg["MISS_RATE"])
    return max(item.get_expiry() for item in items)
