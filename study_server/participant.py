"""Participant routes: entry (preview/consent), instructions, items, images, completion.

A participant's identity in the survey is the unguessable token in the URL, so the pages
work inside MTurk's cross-site iframe where third-party cookies are blocked.  A person's
identity in a study is (study, worker id), whatever adapter they enter through: a worker
who comes back, by any route, is sent to their own participation, and a finished one sees
the completion page again (code and, for MTurk, the submit form).  Anonymous plain-link
participants get a first-party resume cookie on the entry link's path, and a resume link
on their first page.

Each request is one transaction: the view commits once at the end, after which the
response (e.g. the next item or the completion page) is rendered.  Fields are parsed by
:mod:`study_server.fields`; rate limits are attached by :mod:`study_server.limits`.
"""

from __future__ import annotations

import json
import re

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import consent as consent_rules
from . import fields, flow, task_pages, tasks, tokens
from .config import consent_facts, missing_consent
from .flow import Refused
from .models import Study, db
from .pages import render_item_page
from .recruitment import AdapterError, Entry, borrowed_identity, completion_action, parse_entry
from .responses import error_response
from .survey import MNIST_DESIGN, MNIST_DESIGN_V2, SurveyDesign

bp = Blueprint("participant", __name__)

_IMAGE_ID_RE = re.compile(r"[0-9a-f]{24}")
# no-transform: a proxy that recompressed image/png would make the method families differ
# in size again (their padding is what makes them equal)
_CACHE_IMAGES = "private, max-age=86400, no-transform"


# ----------------------------------------------------------------------------- helpers


def _limit(token: str, *, image: bool = False) -> None:
    current_app.extensions["normlime_participant_limits"].check(token, image=image)


@bp.after_request
def _count_misses(resp):
    if resp.status_code == 404 and request.view_args and "token" in request.view_args:
        current_app.extensions["normlime_participant_limits"].missed()
    return resp


def _refused(exc: Refused):
    db.session.rollback()
    return error_response(exc.status, exc.title, exc.message)


@bp.errorhandler(Refused)
def _on_refused(exc: Refused):
    return _refused(exc)


def _page(html: str, status: int = 200, form_action: str = ""):
    resp = make_response(html, status)
    # Pages depend on stored progress: never serve them from a cache.
    resp.headers["Cache-Control"] = "no-store"
    if form_action:
        resp.headers["X-Form-Action"] = form_action
    return resp


_BAD_LINK = (
    "This study link is not valid. "
    "Check that you copied the whole link from the site that sent you here."
)


def _study(key: str):
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", key or ""):
        raise Refused(404, _BAD_LINK)
    study = db.session.execute(select(Study).where(Study.public_key == key)).scalar_one_or_none()
    if study is None:
        raise Refused(404, _BAD_LINK)
    g.study_mode = study.mode
    flow.remember_study_mode(key, study.mode)
    return study


def _adapter(study, name: str) -> dict:
    adapters = json.loads(study.adapters)
    if name not in adapters:
        raise Refused(404, _BAD_LINK)
    return adapters[name]


_CLOSED = (
    "This study is closed and accepts no new participants. Nothing was recorded; you can "
    "return the task on the site that sent you."
)


@bp.before_request
def _check_query():
    # Entry links carry the platform's parameters (bounded, see fields.bounded_query); no
    # other participant route takes a query string.
    if request.args and request.endpoint != "participant.entry":
        fields.parse(request.args, fields.NO_FIELDS)


def _home(p: flow.ParticipantRow):
    """Wherever the participant's stored progress says they are (completion page included)."""
    return redirect(url_for("participant.home", token=p.token), code=303)


def _resume_cookie(key: str) -> str:
    return consent_rules.RESUME_COOKIE.format(key=key)


def _resume_from_cookie(study) -> flow.ParticipantRow | None:
    raw = request.cookies.get(_resume_cookie(study.public_key), "")
    if not tokens.TOKEN_RE.fullmatch(raw):
        return None
    try:
        p = flow.load_participant(raw)
    except Refused:
        return None
    return p if p.study_id == study.id else None


def _maps():
    return current_app.extensions["normlime_maps"]


def _design() -> SurveyDesign:
    """The study's survey design: the one of the bundle the server loaded.  Participants'
    items are stored when they consent, so the server refuses to start on a bundle with
    another design while surveys are open (``flow.check_open_surveys``)."""
    return _maps().design


_OPTION_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
# beyond this many asked classes a list of names stops helping a participant
_MAX_NAMED_CLASSES = 10


def _survey_words(design: SurveyDesign) -> dict:
    """What the preview, consent and instructions pages say about the survey.

    The MNIST study keeps, byte for byte, the wording and worked example it ran with, so
    the replication shows what its participants saw; any other design is described from
    its own counts and class names (the worked example is of a handwritten 4)."""
    asked = [design.class_name(c) for c in design.classes]
    if len(asked) > _MAX_NAMED_CLASSES:
        named = ""
    elif len(asked) == 1:
        named = f"the class {asked[0]}"
    else:
        named = "the classes " + ", ".join(asked[:-1]) + f" and {asked[-1]}"
    return {
        "mnist": design in (MNIST_DESIGN, MNIST_DESIGN_V2),
        "n_items": design.n_items,
        "n_options": _OPTION_WORDS[design.n_options],
        "n_classes": len(design.class_names),
        "asked": named,
        "checks": design.attention_checks > 0,
        "minutes": _minutes(design.n_items),
    }


def _words_for(config_json: str | None) -> dict:
    """The pages' words about the survey: the preference design's, or a help task's."""
    design = tasks.design_of(config_json)
    if design is None:
        return _survey_words(_design())
    return {
        "mnist": False,
        "task": design.task,
        "n_items": design.n_items,
        "n_options": "",
        "asked": "",
        "checks": design.attention_checks > 0,
        "minutes": _minutes(design.n_items),
    }


def _minutes(n_items: int) -> tuple[int, int]:
    """The time a survey of ``n_items`` takes, scaled from the MNIST study's own estimate
    (25 items in 10-15 minutes) so that a shorter survey does not promise the MNIST time."""
    low = max(1, round(n_items * 2 / 5))
    return low, max(low + 1, round(n_items * 3 / 5))


# ----------------------------------------------------------------------------- entry


@bp.get("/")
def front():
    """The address the server prints, opened without a link: what this is and where each
    visitor goes.  It names no study (a study's key is its participants' secret)."""
    html = render_template(
        "message.html",
        title="Study server",
        message="This server runs research surveys. Participants: please open the link "
        "your recruitment platform gave you. Researchers: the admin pages are at /admin/.",
        status=200,
        mode=None,
        back=None,
        retry_after=None,
    )
    out = make_response(html, 200)
    out.headers["Cache-Control"] = "no-store"
    return out


@bp.get("/s/<key>", defaults={"adapter": "link"})
@bp.get("/s/<key>/<adapter>")
def entry(key: str, adapter: str):
    """An entry link: preview, resume a returning person, or the consent page."""
    fields.bounded_query(request.args)
    study = _study(key)
    cfg = _adapter(study, adapter)
    try:
        ent = parse_entry(adapter, cfg, study.mode, request.args)
        if ent.worker_id is None and not ent.preview:
            ent.worker_id = borrowed_identity(json.loads(study.adapters), adapter, request.args)
    except AdapterError as exc:
        raise Refused(400, f"{exc}. Please reopen the link from the site that sent you.") from None
    if ent.preview:
        return _page(render_template("preview.html", mode=study.mode, **_survey_words(_design())))
    if ent.worker_id:
        existing = flow.find_by_worker(study, ent.worker_id)
        if existing is not None:
            if existing.completed_at is None:
                flow.update_assignment(existing, ent)
                db.session.commit()
            return _home(existing)
    elif (existing := _resume_from_cookie(study)) is not None:
        return _home(existing)
    if not study.active:
        raise Refused(403, _CLOSED, "Closed")
    _check_ready(study)
    nonce = tokens.new_nonce()
    params = ent.params()
    return _page(
        render_template(
            "consent.html",
            action=url_for("participant.consent", key=key, adapter=adapter),
            nonce=nonce,
            params=params,
            signature=tokens.entry_signature(study.secret, adapter, nonce, params),
            mode=study.mode,
            **_consent_words(study, adapter, identified=bool(ent.worker_id)),
            **_words_for(study.config),
        )
    )


_NOT_READY = (
    "This study is not ready to take participants yet. Nothing was recorded; you can return "
    "the task on the site that sent you."
)
_PLATFORMS = {"mturk": "Mechanical Turk", "prolific": "Prolific", "connect": "CloudResearch"}


def _check_ready(study) -> None:
    """A live study without its consent facts takes nobody (create-study refuses to make
    one; this covers a study made before the facts were required), nor a help study whose
    server holds no stimuli for its conditions."""
    if missing_consent(study.mode, json.loads(study.config or "{}")):
        raise Refused(503, _NOT_READY, "Not ready")
    design = tasks.design_of(study.config)
    if design is not None:
        _task_stimuli(design)


def _task_stimuli(design: tasks.TaskDesign):
    """The stimuli store a help study needs (503 when the server has none that fit)."""
    store = current_app.extensions.get("normlime_stimuli")
    if store is None or any(
        c != "none" and c not in store.stimuli.methods for c in design.conditions
    ):
        current_app.logger.error(
            "a %s study needs a stimuli bundle (NORMLIME_STIMULI) with maps of %s",
            design.task, ", ".join(c for c in design.conditions if c != "none"),
        )  # fmt: skip
        raise Refused(503, _NOT_READY, "Not ready")
    return store


def _n_items(p: flow.ParticipantRow) -> int:
    design = tasks.design_of(p.study_config)
    return design.n_items if design is not None else _design().n_items


def _consent_words(study, adapter: str, *, identified: bool) -> dict:
    """The consent page's facts and its list of what is kept, for this route."""
    platform = _PLATFORMS.get(adapter, "the site that sent you here")
    return {
        "facts": consent_facts(study.config),
        "kept": consent_rules.kept(
            identified=identified, raw_ids=study.raw_worker_ids, platform=platform,
            grouped=tasks.design_of(study.config) is not None,
        ),
        "identified": identified,
        "platform": platform,
        "cookie": not identified,
        "cookie_days": consent_rules.RESUME_DAYS,
        "address_minutes": -(-consent_rules.address_window_seconds(current_app.config) // 60),
    }


@bp.post("/s/<key>/<adapter>/consent")
def consent(key: str, adapter: str):
    """Consent given: create the participation (idempotent per nonce and per person)."""
    form = fields.parse(request.form, fields.CONSENT)
    study = _study(key)
    _adapter(study, adapter)
    if form.get("agree") != "yes":
        raise Refused(400, "Please tick the consent box to take part, then press Continue.")
    nonce = form["nonce"]
    params = {k[2:]: v for k, v in form.items() if k.startswith("p.")}
    if not tokens.same(form["sig"], tokens.entry_signature(study.secret, adapter, nonce, params)):
        raise Refused(400, "The consent form was altered or is incomplete; please reopen the link.")
    existing = flow.find_by_nonce(study.id, nonce)
    if existing is not None:  # a double click or a retried request
        return _home(existing)
    ent = Entry.from_params(adapter, params)
    if ent.worker_id and (existing := flow.find_by_worker(study, ent.worker_id)) is not None:
        return _home(existing)
    if not study.active:
        raise Refused(403, _CLOSED, "Closed")
    _check_ready(study)
    try:
        maps = _maps()
        design = tasks.design_of(study.config)
        task, sha = None, maps.sha256
        if design is not None:
            store = _task_stimuli(design)
            task, sha = (design, store.stimuli), store.sha256
        token = flow.create_participant(
            study, ent, nonce, design=maps.design, bundle_sha256=sha, task=task
        )
        db.session.commit()
    except IntegrityError:
        # Another request created this participation first: resolve to it.
        db.session.rollback()
        existing = flow.find_by_nonce(study.id, nonce) or (
            flow.find_by_worker(study, ent.worker_id) if ent.worker_id else None
        )
        if existing is None:
            raise
        return _home(existing)
    resp = redirect(url_for("participant.home", token=token), code=303)
    if not ent.worker_id:
        # An anonymous plain-link participant: the same link brings them back (first-party
        # cookie, entry path only; the resume link on the next page works without it).
        resp.set_cookie(
            _resume_cookie(study.public_key),
            token,
            max_age=consent_rules.RESUME_DAYS * 86400,
            path=f"{request.script_root}/s/{study.public_key}",
            secure=current_app.config["SECURE_COOKIES"],
            httponly=True,
            samesite="Lax",
        )
    return resp


# ----------------------------------------------------------------------------- survey


@bp.get("/p/<token>")
def home(token: str):
    """Whatever the stored progress says comes next: instructions, an item, or the end."""
    _limit(token)
    p = flow.load_participant(token)
    if p.completed_at is not None:
        return _completion_page(p)
    if p.started_at is None:
        design = tasks.design_of(p.study_config)
        return _page(
            render_template(
                "instructions.html" if design is None else "task_instructions.html",
                action=url_for("participant.start", token=token),
                mode=p.mode,
                resume_url=url_for("participant.home", token=token, _external=True)
                if p.worker_key is None
                else None,
                **_words_for(p.study_config),
                **(task_pages.instructions(p, design) if design is not None else {}),
            )
        )
    item = flow.current_item(p, _n_items(p))
    db.session.commit()
    return _item_page(p, item)


@bp.post("/p/<token>/start")
def start(token: str):
    _limit(token)
    fields.parse(request.form, fields.START)
    p = flow.load_participant(token)
    if p.completed_at is None:
        flow.start(p)
        db.session.commit()
    return _home(p)


@bp.post("/p/<token>/answer")
def answer(token: str):
    """Store one answer, then show the next item (or the completion page) in the reply."""
    _limit(token)
    # a server with help studies (stimuli loaded) has longer surveys and more answers per
    # item than the preference design; the participant's own bounds are checked once read
    preference_only = current_app.extensions.get("normlime_stimuli") is None
    form = fields.parse(request.form, fields.ANSWER if preference_only else fields.TASK_ANSWER)
    bound = _design().n_items if preference_only else fields.MAX_POSITION
    position, choice = fields.within("q", form["q"], bound), form["c"]
    ctx = flow.load_for_answer(token, position)
    p = ctx.participant
    if not tokens.same(form["f"], tokens.form_signature(p.secret, token, position)):
        raise Refused(400, "The answer form was altered; please reload the page.")
    design = tasks.design_of(p.study_config)
    if design is None:
        stored = flow.record_answer(
            ctx, choice, n_items=_design().n_items, images_ms=form.get("l")
        )
    else:
        stored = task_pages.record(ctx, design, choice, _task_stimuli(design),
                                   images_ms=form.get("l"))  # fmt: skip
    if not stored:
        # Retried or double-clicked: acknowledge with wherever the survey now stands
        # (re-read: a concurrent twin of this request may just have completed the survey).
        return _current_page(flow.load_participant(token))
    db.session.commit()
    if ctx.next_item is None:
        return _completion_page(p)
    return _item_page(p, ctx.next_item)


def _current_page(p: flow.ParticipantRow):
    if p.completed_at is not None:
        return _completion_page(p)
    item = flow.current_item(p, _n_items(p))
    db.session.commit()
    if item is None:  # pragma: no cover - completion commits with the last answer
        raise Refused(409, "This survey is already complete.")
    return _item_page(p, item)


def _item_page(p: flow.ParticipantRow, item: flow.ItemRow):
    design = tasks.design_of(p.study_config)
    if design is not None:
        return _page(task_pages.item_page(p, design, item, _task_stimuli(design)))
    # Paths are formatted directly (url_for costs more than the rest of the page); the
    # routes they point to are the ones declared in this module.
    base = f"{request.script_root}/p/{p.token}"
    design = _design()
    n_options = len(item.slots)
    images = [
        f"{base}/img/{item.position}/{tokens.image_id(p.secret, p.token, item.position, slot)}"
        for slot in range(1, n_options + 1)
    ]
    values = {
        "position": item.position,
        "answered": item.position - 1,
        "class_name": design.class_name(item.digit),
        "signature": tokens.form_signature(p.secret, p.token, item.position),
        "action": f"{base}/answer",
        "home": base,
        **{f"img{i}": url for i, url in enumerate(images, start=1)},
    }
    cache = current_app.extensions.setdefault("normlime_item_pages", {})
    html = render_item_page(
        cache,
        p.mode,
        values,
        n_items=design.n_items,
        n_options=n_options,
        question=design.question,
    )
    return _page(html)


def _completion_page(p: flow.ParticipantRow):
    action = completion_action(
        p.adapter_config,
        code=p.completion_code,
        assignment_id=p.assignment_id,
        submit_to=p.submit_to,
    )
    form_action = p.submit_to if action["kind"] == "mturk" else ""
    html = render_template(
        "complete.html",
        finish=action,
        mode=p.mode,
        n_items=_n_items(p),
        public_id=p.public_id,
        facts=consent_facts(
            db.session.execute(select(Study.config).where(Study.id == p.study_id)).scalar_one()
        ),
    )
    return _page(html, form_action=form_action)


@bp.get("/p/<token>/img/<int:position>/<image>")
def image(token: str, position: int, image: str):
    """One option's map under an opaque URL; identical headers for every image."""
    _limit(token, image=True)
    if not _IMAGE_ID_RE.fullmatch(image) or not 1 <= position <= fields.MAX_POSITION:
        raise Refused(404, "No such image.")
    p = flow.load_participant(token)
    item = flow.load_shown_item(p, position)
    if item is None:
        raise Refused(404, "No such image.")
    design = tasks.design_of(p.study_config)
    for slot, (method, class_index, _role) in enumerate(item.slots, start=1):
        if tokens.same(image, tokens.image_id(p.secret, token, position, slot)):
            db.session.rollback()  # read-only: end the transaction before sending bytes
            data = (
                _maps().png(method, class_index) if design is None
                else _task_stimuli(design).png(method)  # a help item's slot names its file
            )  # fmt: skip
            resp = Response(data, mimetype="image/png")
            resp.headers["Cache-Control"] = _CACHE_IMAGES
            return resp
    raise Refused(404, "No such image.")


@bp.get("/p/<token>/example/<int:k>")
def example(token: str, k: int):
    """The instructions' worked examples of a help study (HIVE's preview), in the
    participant's condition; the same headers as every image."""
    _limit(token, image=True)
    p = flow.load_participant(token)
    design = tasks.design_of(p.study_config)
    if design is None:
        raise Refused(404, "No such image.")
    store = _task_stimuli(design)
    examples = task_pages.preview_items(store.stimuli)
    if not 1 <= k <= len(examples):
        raise Refused(404, "No such image.")
    db.session.rollback()
    name = task_pages.preview_picture(store.stimuli, p.condition, examples[k - 1])
    resp = Response(store.png(name), mimetype="image/png")
    resp.headers["Cache-Control"] = _CACHE_IMAGES
    return resp
