"""Study-server commands: up, serve, init-db, db upgrade, create-study, set-admin-password,
study-links, export-votes, export-hits.

Everything heavy (Flask, SQLAlchemy, numpy) is imported inside the commands; torch is
never imported, not even by ``normlime up``, which runs training and precomputation as
separate ``normlime`` processes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import click

from explainers.errors import InputError

__all__ = ["COMMANDS", "InputError"]

DEFAULT_MODEL = Path("artifacts/model/mnist-cnn.pt")
#: same as study_server.schema.DEFAULT_DB (repeated so the CLI imports no SQLAlchemy)
DEFAULT_DB = "sqlite:///artifacts/study.sqlite3"
ADMIN_PASSWORD_ENV = "NORMLIME_ADMIN_PASSWORD"


def db_option(func):
    return click.option(
        "--db",
        "db_url",
        envvar="DATABASE_URL",
        default=DEFAULT_DB,
        show_default=True,
        show_envvar=True,
        help="SQLAlchemy URL of the study database (SQLite file or PostgreSQL).",
    )(func)


def _engine(db_url: str, *, need_schema: bool = True):
    from .schema import SchemaError, check_current, make_engine

    try:
        engine = make_engine(db_url)
        if need_schema:
            check_current(engine)
    except SchemaError as exc:
        raise InputError(str(exc)) from None
    return engine


def _session(engine):
    from sqlalchemy.orm import Session

    return Session(engine)


def _user_errors():
    """Exception types that are the user's fault (shown as one line, exit 2)."""
    from explainers.bundle import BundleError

    from .hits import HitExportError
    from .recruitment import AdapterError
    from .schema import SchemaError
    from .studies import StudyError

    return (BundleError, HitExportError, AdapterError, SchemaError, StudyError)


def _print_links(study, base_url: str, *, admin: bool = True) -> None:
    import json

    from .recruitment import example_links

    adapters = json.loads(study.adapters)
    # a live study's links carry no example ids: opened by the operator "to check", an
    # example id would become a participant in the study's data
    live = study.mode == "live"
    worker = None if live else "DEBUG_" + secrets.token_hex(3).upper()
    links = example_links(base_url, study.public_key, adapters, worker=worker)
    click.echo(f"Study {study.name!r} ({study.mode} mode)")
    if live:
        click.echo("  (live: give these links to the platforms, which add each participant's "
                   "ids; try the study in a sandbox or debug study instead)")
    width = max(len(n) for n in links) + 2
    for name, url in links.items():
        label = {"link": "plain link", "mturk": "MTurk-style", "prolific": "Prolific-style"}.get(
            name, name
        )
        click.echo(f"  participant link ({label}):".ljust(width + 30) + url)
    if admin:
        click.echo("  admin:".ljust(width + 30) + f"{base_url.rstrip('/')}/admin/")


def _base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"


# ----------------------------------------------------------------------------- init-db


@click.command("init-db")
@db_option
def init_db_command(db_url):
    """Create the study database schema (tables, triggers, secret key) if absent."""
    from .schema import SchemaError, check_current, init_db

    engine = _engine(db_url, need_schema=False)
    created = init_db(engine)
    try:
        check_current(engine)
    except SchemaError as exc:
        raise InputError(str(exc)) from None
    click.echo(f"{'created' if created else 'already present'}: study schema in {db_url}")


# ----------------------------------------------------------------------------- db


@click.group("db")
def db_group():
    """Schema migrations of the study database (Alembic)."""


@db_group.command("upgrade")
@db_option
def db_upgrade_command(db_url):
    """Migrate the database to this release's schema; safe to run mid-study and twice.

    Back the database up first (sqlite3 .backup, pg_dump).  Open surveys continue after the
    upgrade with nothing lost.
    """
    from .schema import upgrade

    engine = _engine(db_url, need_schema=False)
    try:
        before, after = upgrade(engine)
    except Exception as exc:  # noqa: BLE001 - a failed migration is rolled back: one line
        raise InputError(f"upgrade failed, nothing changed: {str(exc).splitlines()[0]}") from None
    if before == after:
        click.echo(f"already at revision {after}: {db_url}")
    else:
        click.echo(f"upgraded {db_url} from revision {before or '(empty)'} to {after}")


@db_group.command("current")
@db_option
def db_current_command(db_url):
    """Print the database's schema revision and the one this release needs."""
    from .schema import head_revision, schema_revision

    engine = _engine(db_url, need_schema=False)
    try:
        revision = schema_revision(engine)
    except _user_errors() as exc:
        raise InputError(str(exc)) from None
    click.echo(f"database: {revision or '(empty)'}; this release: {head_revision()}")


# ----------------------------------------------------------------------------- create-study


@click.command("create-study")
@db_option
@click.option("--name", required=True, help="Unique study name (shown in exports).")
@click.option(
    "--mode",
    type=click.Choice(["debug", "sandbox", "live"]),
    required=True,
    help="debug and sandbox runs are excluded from exports unless asked for.",
)
@click.option(
    "--raw-worker-ids",
    is_flag=True,
    help="Also store raw worker ids (e.g. to pay bonuses); default: keyed hash only.",
)
@click.option(
    "--completion-code",
    default=None,
    help="Study-wide completion code for Prolific (the cc in its completion URL).",
)
@click.option(
    "--prolific-completion-url",
    default=None,
    help="Prolific completion URL; {code} is replaced by the completion code.",
)
@click.option(
    "--link-completion-url",
    default=None,
    help="Where the plain link sends finished participants ({code} = their code).",
)
@click.option(
    "--adapter",
    "adapter_specs",
    multiple=True,
    metavar="NAME|JSON",
    help="A recruitment adapter the study accepts (repeatable): mturk, prolific, link, or "
    'another panel as JSON, e.g. \'{"name": "cint", "kind": "redirect", "worker_param": '
    '"RID", "completion_url": "https://panel.example/done?code={code}"}\'. '
    "Default: mturk, prolific and link.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The study's configuration (TOML): the consent page's facts (required for a live "
    "study) and the Prolific study; see docs/study-config.example.toml.",
)
@click.option("--base-url", default="http://127.0.0.1:5000", show_default=True)
def create_study_command(
    db_url,
    name,
    mode,
    raw_worker_ids,
    completion_code,
    prolific_completion_url,
    link_completion_url,
    adapter_specs,
    config_path,
    base_url,
):
    """Create a study with its recruitment adapters (MTurk, Prolific, plain link, ...)."""
    import json

    from .config import ConfigError, load_config
    from .recruitment import PROLIFIC_COMPLETION_URL, default_adapters, optional_adapters
    from .studies import create_study

    known = default_adapters(
        completion_code=completion_code,
        prolific_url=prolific_completion_url or PROLIFIC_COMPLETION_URL,
    )
    if link_completion_url:
        known["link"]["completion_url"] = link_completion_url
    adapters = {} if adapter_specs else dict(known)
    known.update(optional_adapters(completion_code=completion_code))  # by name, never default
    for raw in adapter_specs:
        if raw.lstrip().startswith("{"):
            try:
                cfg = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InputError(f"--adapter is not valid JSON ({exc.msg})") from None
            if not isinstance(cfg, dict) or not isinstance(cfg.get("name"), str):
                raise InputError('--adapter needs a JSON object with a "name"')
            adapters[cfg["name"]] = {k: v for k, v in cfg.items() if k != "name"}
        elif raw in known:
            adapters[raw] = known[raw]
        else:
            raise InputError(
                f"--adapter {raw!r}: give one of {', '.join(known)} or a JSON object"
            )
    for flag, value, needs in (
        ("--completion-code", completion_code, "connect" if "connect" in adapters else "prolific"),
        ("--prolific-completion-url", prolific_completion_url, "prolific"),
        ("--link-completion-url", link_completion_url, "link"),
    ):
        if value and needs not in adapters:
            raise InputError(f"{flag} is for the {needs} adapter, which this study does not use")
    try:
        config = load_config(config_path) if config_path else {}
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    engine = _engine(db_url)
    try:
        with _session(engine) as session, session.begin():
            study = create_study(
                session,
                name,
                mode=mode,
                adapters=adapters,
                raw_worker_ids=raw_worker_ids,
                config=config,
            )
            session.flush()
            _print_links(study, base_url, admin=False)
            click.echo(f"  adapters: {', '.join(sorted(adapters))}")
            _warn_anonymous(adapters)
    except _user_errors() as exc:
        raise InputError(str(exc)) from None


def _warn_anonymous(adapters: dict) -> None:
    """An anonymous link beside an identified panel lets a person take part twice."""
    from .recruitment import anonymous_beside_identified

    anonymous, identified = anonymous_beside_identified(adapters)
    if anonymous and identified:
        click.echo(
            f"warning: {', '.join(anonymous)} is anonymous beside {', '.join(identified)}: "
            "a panel's worker who opens the plain link without an id can take part a second "
            "time (the plain link resumes anyone it recognises: its own id, the panels' id "
            "parameters, or its cookie); give only the panels' links to panel workers",
            err=True,
        )


# ----------------------------------------------------------------------------- admin password


def _store_password(engine, password: str) -> None:
    from .studies import set_admin_password

    try:
        with _session(engine) as session, session.begin():
            set_admin_password(session, password)
    except _user_errors() as exc:
        raise InputError(str(exc)) from None


@click.command("set-admin-password")
@db_option
def set_admin_password_command(db_url):
    """Set the admin password (from $NORMLIME_ADMIN_PASSWORD, else prompted); stored hashed."""
    engine = _engine(db_url)
    password = os.environ.get(ADMIN_PASSWORD_ENV)
    if not password:
        password = click.prompt("Admin password", hide_input=True, confirmation_prompt=True)
    _store_password(engine, password)
    click.echo("admin password set (stored as a salted hash)")


# ----------------------------------------------------------------------------- links


@click.command("study-links")
@db_option
@click.option("--base-url", default="http://127.0.0.1:5000", show_default=True)
@click.option("--study", "study_name", default=None, help="default: all studies")
def study_links_command(db_url, base_url, study_name):
    """Print each study's participant links and the admin link."""
    from .studies import find_study, list_studies

    engine = _engine(db_url)
    with _session(engine) as session:
        try:
            chosen = [find_study(session, study_name)] if study_name else list_studies(session)
        except _user_errors() as exc:
            raise InputError(str(exc)) from None
        for study in chosen:
            _print_links(study, base_url)


# ----------------------------------------------------------------------------- serve / up


def _load_app(maps_dir, db_url, *, fake_mturk: bool, limits_storage: str | None = None,
              stimuli_dir=None):  # fmt: skip
    from . import create_app

    cfg = {"SQLALCHEMY_DATABASE_URI": db_url, "MAPS_DIR": str(maps_dir), "FAKE_MTURK": fake_mturk}
    if limits_storage:
        cfg["LIMITS_STORAGE"] = limits_storage
    if stimuli_dir:
        cfg["STIMULI_DIR"] = str(stimuli_dir)
    try:
        return create_app(cfg)
    except _user_errors() as exc:
        raise InputError(str(exc)) from None
    except ValueError as exc:  # a bad rate or limits storage URL
        raise InputError(str(exc).splitlines()[0]) from None


def _serve(app, host: str, port: int) -> None:
    """The development server until Ctrl-C or SIGTERM, either of which stops it cleanly.

    SIGTERM is what process managers and ``kill`` send, and it is never ignored on the
    way in.  SIGINT alone is not enough: a process started from a non-interactive shell's
    background job inherits SIGINT as *ignored*, and Python then leaves it ignored -- a
    test suite run in the background could not stop the server with it (the cause of the
    intermittent 20-second wait in tests/test_server_processes.py).
    """
    import logging
    import signal

    from .logs import RequestHandler, install

    def stop(_signum, _frame):
        raise KeyboardInterrupt  # werkzeug's serve loop ends on it, as on Ctrl-C

    click.echo(f"serving on {_base_url(host, port)} (Ctrl-C or SIGTERM to stop)")
    install(logging.getLogger("werkzeug"))
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        app.run(
            host=host,
            port=port,
            threaded=True,
            debug=False,
            use_reloader=False,
            request_handler=RequestHandler,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)


maps_option = click.option(
    "--maps",
    "maps_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Maps bundle directory [default: $NORMLIME_MAPS, else the bundle shipped in the "
    "package, else artifacts/maps].",
)
def _project_maps(_ctx, _param, value):
    if value is None:
        return None
    from explainers.project import ProjectError, project_maps_dir

    try:
        return project_maps_dir(value)
    except ProjectError as exc:
        raise InputError(str(exc)) from None


project_option = click.option(
    "--project",
    "project_maps",
    default=None,
    type=click.Path(path_type=Path),
    callback=_project_maps,
    help="a study project (DIR/study.toml): serve the maps its `normlime precompute "
    "--project DIR` wrote (instead of --maps)",
)


def _maps_dir(maps_dir: Path | None, project_maps: Path | None) -> Path:
    from .maps import default_maps_dir

    if maps_dir is not None and project_maps is not None:
        raise InputError("give --maps or --project, not both")
    if project_maps is not None:
        if not (project_maps / "manifest.json").is_file():
            raise InputError(
                f"the project has no maps yet ({project_maps}): run `normlime precompute "
                "--project DIR` first"
            )
        return project_maps
    return maps_dir or default_maps_dir()


host_option = click.option("--host", default="127.0.0.1", show_default=True)
port_option = click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
limits_option = click.option(
    "--limits-storage",
    default=None,
    metavar="URL",
    help="Flask-Limiter storage shared by all processes, e.g. redis://127.0.0.1:6379 "
    "[default: $NORMLIME_LIMITS_STORAGE, else memory://].",
)
fake_option = click.option(
    "--fake-mturk/--no-fake-mturk",
    default=True,
    show_default=True,
    help="Serve a local stand-in for MTurk's externalSubmit at /_debug/mturk (debug studies).",
)


@click.command("serve")
@maps_option
@project_option
@db_option
@host_option
@port_option
@fake_option
@limits_option
@click.option("--stimuli", "stimuli_dir", type=click.Path(file_okay=False, path_type=Path),
              envvar="NORMLIME_STIMULI", default=None,
              help="the per-image stimuli of forward-simulation, distinction and agreement "
              "studies (normlime make-stimuli)")  # fmt: skip
def serve_command(maps_dir, project_maps, db_url, host, port, fake_mturk, limits_storage,
                  stimuli_dir):  # fmt: skip
    """Development server (use gunicorn in production; see docs/study-server.md)."""
    from .studies import list_studies

    app = _load_app(
        _maps_dir(maps_dir, project_maps), db_url, fake_mturk=fake_mturk,
        limits_storage=limits_storage, stimuli_dir=stimuli_dir,
    )  # fmt: skip
    with _session(_engine(db_url)) as session:
        for study in list_studies(session):
            _print_links(study, _base_url(host, port))
    _serve(app, host, port)


def run_in_child(target, *args, what: str) -> None:
    """``target(*args)`` in a fresh child interpreter, its output passed straight through.

    The child process is the point: building a bundle imports torch and the explainers
    (about a gigabyte and a pool of threads), and the web server that ``up`` starts next
    must not carry them (tests/test_server_notorch.py).  ``spawn`` gives the child a clean
    interpreter that imports only what ``target`` needs.
    """
    import multiprocessing

    click.echo(f"==> {what}", err=True)
    proc = multiprocessing.get_context("spawn").Process(target=target, args=args)
    try:
        proc.start()
    except OSError as exc:
        raise click.ClickException(f"could not start {what}: {exc}") from None
    proc.join()
    if proc.exitcode != 0:
        raise click.ClickException(
            f"{what} failed with exit code {proc.exitcode} (its output is above)"
        )


def ensure_bundle(maps_dir: Path, *, model_path: Path = DEFAULT_MODEL):
    """Load the bundle, first training and precomputing it when it is missing."""
    from explainers.demo_bundle import build_demo_bundle

    from .maps import BundleError, load_maps

    if not (maps_dir / "manifest.json").is_file():
        click.echo(f"no maps bundle at {maps_dir}: building it (model, then maps)", err=True)
        run_in_child(
            build_demo_bundle, str(maps_dir), str(model_path),
            what=f"building the demo bundle in {maps_dir} (model {model_path})",
        )  # fmt: skip
    try:
        return load_maps(maps_dir)
    except BundleError as exc:
        raise InputError(str(exc)) from None


@click.command("up")
@maps_option
@project_option
@db_option
@host_option
@port_option
@click.option("--no-serve", is_flag=True, help="Set everything up and print the links, then exit.")
@limits_option
def up_command(maps_dir, project_maps, db_url, host, port, no_serve, limits_storage):
    """Bring the study up: maps (built if missing), database, default study, admin, server."""
    from .recruitment import default_adapters
    from .schema import init_db
    from .studies import admin_password_hash, create_study, list_studies

    maps_dir = _maps_dir(maps_dir, project_maps)
    store = ensure_bundle(maps_dir)
    click.echo(f"maps: {maps_dir} (sha256 {store.sha256[:12]})")
    engine = _engine(db_url, need_schema=False)
    if init_db(engine):
        click.echo(f"database: created the study schema in {db_url}")
    else:
        click.echo(f"database: {db_url}")
    password_env = os.environ.get(ADMIN_PASSWORD_ENV)
    generated = None
    with _session(engine) as session, session.begin():
        if not list_studies(session):
            create_study(session, "default", mode="debug", adapters=default_adapters())
            click.echo("created the study 'default' in debug mode")
        has_password = admin_password_hash(session) is not None
    if password_env:
        _store_password(engine, password_env)
        click.echo(f"admin password: set from ${ADMIN_PASSWORD_ENV}")
    elif not has_password:
        generated = secrets.token_urlsafe(12)
        _store_password(engine, generated)
    app = _load_app(maps_dir, db_url, fake_mturk=True, limits_storage=limits_storage)
    base = _base_url(host, port)
    with _session(engine) as session:
        for study in list_studies(session):
            _print_links(study, base)
    if generated:
        click.echo(f"admin password (shown once, stored hashed): {generated}")
    elif not password_env:
        click.echo("admin password: unchanged (reset with `normlime set-admin-password`)")
    if no_serve:
        return
    _serve(app, host, port)


# ----------------------------------------------------------------------------- exports


@contextlib.contextmanager
def _export_session(db_url: str, study_name: str | None):
    """A session on the study database, after checking that ``study_name`` exists."""
    from .studies import find_study

    with _session(_engine(db_url)) as session:
        if study_name:
            try:
                find_study(session, study_name)
            except _user_errors() as exc:
                raise InputError(str(exc)) from None
        yield session


def _write_export(session, out_path: Path, columns, rows, include_debug, study_name) -> None:
    from .exports import write_csv

    out_path.parent.mkdir(parents=True, exist_ok=True)
    n = write_csv(out_path, columns, rows(session, include_debug=include_debug, study=study_name))
    click.echo(f"wrote {n} answers to {out_path}")


@click.command("export-votes")
@db_option
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--include-debug", is_flag=True, help="Include debug and sandbox runs (test data).")
@click.option("--study", "study_name", default=None, help="Only this study (default: all).")
@click.option(
    "--participants",
    "participants_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write one row per participant (completion, checks passed, codes) here.",
)
def export_votes_command(db_url, out_path, include_debug, study_name, participants_path):
    """Write votes.csv (participant_id, question_index, is_attention_check, digit,
    chosen_method, passed, position, response_ms, ...)."""
    from sqlalchemy import func, select

    from .exports import (
        LIVE_MODES,
        PARTICIPANT_COLUMNS,
        VOTE_COLUMNS,
        participant_rows,
        vote_rows,
        write_csv,
    )
    from .models import Participant

    with _export_session(db_url, study_name) as session:
        _write_export(session, out_path, VOTE_COLUMNS, vote_rows, include_debug, study_name)
        if participants_path:
            participants_path.parent.mkdir(parents=True, exist_ok=True)
            m = write_csv(
                participants_path,
                PARTICIPANT_COLUMNS,
                participant_rows(session, include_debug=include_debug, study=study_name),
            )
            click.echo(f"wrote {m} participants to {participants_path}")
        if not include_debug:
            skipped = session.execute(
                select(func.count()).where(Participant.mode.not_in(LIVE_MODES))
            ).scalar_one()
            if skipped:
                click.echo(
                    f"left out {skipped} participants of debug/sandbox runs "
                    "(add --include-debug to export them)",
                    err=True,
                )


@click.command("export-hits")
@db_option
@click.option("--base-url", required=True, help="Public HTTPS address of this server.")
@click.option("--count", type=click.IntRange(min=1), required=True, help="Number of HITs.")
@click.option("--sandbox", is_flag=True, help="For MTurk's requester sandbox.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--study", "study_name", default=None, help="default: the most recent study")
@click.option("--adapter", default="mturk", show_default=True, help="an mturk-kind adapter")
@click.option("--frame-height", type=click.IntRange(0, 10000), default=800, show_default=True)
@click.option("--batch", default=None, help="Batch label added to every link (default: time).")
def export_hits_command(
    db_url, base_url, count, sandbox, out_dir, study_name, adapter, frame_height, batch
):
    """Write MTurk ExternalQuestion XML and the batch's HIT links (for replication)."""
    import json

    from .hits import write_hits
    from .studies import find_study

    engine = _engine(db_url)
    try:
        with _session(engine) as session:
            study = find_study(session, study_name)
            adapters = json.loads(study.adapters)
            if adapters.get(adapter, {}).get("kind") != "mturk":
                raise InputError(f"study {study.name!r} has no mturk adapter named {adapter!r}")
            info = write_hits(
                out_dir,
                base_url=base_url,
                study_key=study.public_key,
                study_name=study.name,
                study_mode=study.mode,
                adapter=adapter,
                count=count,
                sandbox=sandbox,
                frame_height=frame_height,
                batch=batch,
            )
    except _user_errors() as exc:
        raise InputError(str(exc)) from None
    click.echo(
        f"wrote {count} HIT questions for study {info['study']!r} "
        f"({'sandbox' if sandbox else 'live'}) to {out_dir}"
    )


# ----------------------------------------------------------------------------- withdraw


@click.command("withdraw")
@db_option
@click.option("--study", "study_name", required=True, help="The study's name.")
@click.option("--worker", "worker_id", default=None, help="The platform's worker id.")
@click.option(
    "--participant", "public_id", default=None, help="Or the participant id of the exports."
)
def withdraw_command(db_url, study_name, worker_id, public_id):
    """Delete one participant's answers on request (their consent allows withdrawal).

    Leaves a tombstone (so the person is not enrolled again and can still be paid) and an
    event-log record without the raw worker id.  Cannot be undone.
    """
    from .studies import find_study
    from .withdrawal import withdraw

    engine = _engine(db_url)
    try:
        with _session(engine) as session, session.begin():
            study = find_study(session, study_name)
            done = withdraw(session, study, worker_id=worker_id, public_id=public_id)
    except _user_errors() as exc:
        raise InputError(str(exc)) from None
    click.echo(
        f"withdrew participant {done['public_id']} from study {study_name!r}: "
        f"{done['answers_removed']} answers deleted"
    )


# ----------------------------------------------------------------------------- reconcile


@click.command("reconcile")
@db_option
@click.option("--study", "study_name", required=True, help="The study's name.")
@click.option(
    "--platform-export",
    "export_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Prolific's submissions export or an MTurk batch-results CSV.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("artifacts/reconcile"),
    show_default=True,
    help="Where approve.csv and investigate.csv are written.",
)
def reconcile_command(db_url, study_name, export_path, out_dir):
    """Compare the platform's submissions with the database before paying anyone."""
    from .reconcile import CATEGORIES, ReconcileError, read_platform_export, reconcile, write_lists
    from .studies import find_study

    try:
        export = read_platform_export(export_path)
    except ReconcileError as exc:
        raise InputError(str(exc)) from None
    engine = _engine(db_url)
    try:
        with _session(engine) as session:
            study = find_study(session, study_name)
            result = reconcile(session, study, export)
    except _user_errors() as exc:
        raise InputError(str(exc)) from None
    paths = write_lists(result, out_dir)
    click.echo(f"{export.platform} export: {len(export.rows)} submissions, study {study_name!r}")
    for cat in CATEGORIES:
        click.echo(f"  {cat:<22} {len(result[cat])}")
    click.echo(f"wrote {paths['approve']} and {paths['investigate']}")


@click.command("export-responses")
@db_option
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--include-debug", is_flag=True, help="Include debug and sandbox runs (test data).")
@click.option("--study", "study_name", default=None, help="Only this study (default: all).")
def export_responses_command(db_url, out_path, include_debug, study_name):
    """Write one row per answer of the forward-simulation, distinction and agreement
    studies (participant, condition, task, phase, item, correct, response, rt_ms, ...),
    for `normlime analyze --responses`."""
    from .exports import RESPONSE_COLUMNS, response_rows

    with _export_session(db_url, study_name) as session:
        _write_export(session, out_path, RESPONSE_COLUMNS, response_rows, include_debug,
                      study_name)  # fmt: skip


COMMANDS = [
    up_command,
    serve_command,
    init_db_command,
    db_group,
    create_study_command,
    set_admin_password_command,
    study_links_command,
    export_votes_command,
    export_responses_command,
    export_hits_command,
    withdraw_command,
    reconcile_command,
]
