"""``normlime prolific``: a study's life on Prolific (create, publish, pause, resume, sync,
approve, bonus), each call that moves money or state made exactly once.

The work is in :mod:`study_server.prolific`; this module only reads the options and turns
errors into one line: a mistake or a refusal by Prolific exits with code 2, Prolific being
unreachable with code 1.  ``--dry-run`` shows each request a real run would send (method,
path, JSON body), sends nothing and changes nothing.  The API token comes from
``$PROLIFIC_TOKEN`` only.  See docs/prolific.md.
"""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from explainers.errors import InputError

from .cli import _engine, _user_errors, db_option

__all__ = ["COMMANDS", "prolific_group"]


def _study_options(func):
    func = click.option(
        "--dry-run",
        is_flag=True,
        help="Show the requests a real run would send; send nothing, change nothing.",
    )(func)
    func = click.option("--study", "study_name", required=True, help="The study's name.")(func)
    return db_option(func)


def _scrub(text: str) -> str:
    from .prolific_api import TOKEN_ENV

    token = os.environ.get(TOKEN_ENV, "").strip()
    return text.replace(token, "***") if token else text


def _run(db_url: str, study_name: str, dry_run: bool, work):
    """``work(ops)`` on the named study, errors as one line."""
    from .prolific import Ops, StudyInfo
    from .prolific_api import NoReply, PlatformError, ProlificError, client_from_env

    engine = _engine(db_url)
    try:
        study = StudyInfo.load(engine, study_name)
        client = None if dry_run else client_from_env()
        if dry_run:
            click.echo("dry run: nothing is sent to Prolific and nothing is stored")
        return work(Ops(engine, study, client, dry_run=dry_run, out=click.echo))
    except (ProlificError, *_user_errors()) as exc:
        raise InputError(_scrub(str(exc))) from None
    except PlatformError as exc:
        raise click.ClickException(_scrub(str(exc))) from None
    except NoReply as exc:
        raise click.ClickException(f"no answer from Prolific ({exc}); try again later") from None
    finally:
        engine.dispose()


@click.group("prolific")
def prolific_group():
    """Run a study on Prolific: create, publish, pause, resume, sync, approve, bonus.

    Needs $PROLIFIC_TOKEN (a Prolific API token; read from the environment only).
    $PROLIFIC_API_URL overrides https://api.prolific.com.
    """


@prolific_group.command("create")
@_study_options
@click.option(
    "--base-url",
    required=True,
    help="Public https address of this server (the study's Prolific entry link starts here).",
)
def create_command(db_url, study_name, dry_run, base_url):
    """Create the study's draft on Prolific from its configuration (once)."""
    _run(db_url, study_name, dry_run, lambda ops: ops.create(base_url))


def _transition_command(verb: str, doc: str):
    @prolific_group.command(verb, help=doc)
    @_study_options
    def command(db_url, study_name, dry_run):
        _run(db_url, study_name, dry_run, lambda ops: ops.transition(verb))

    return command


publish_command = _transition_command("publish", "Publish the study's draft to participants.")
pause_command = _transition_command("pause", "Pause the study: no new participants.")
resume_command = _transition_command("resume", "Resume a paused study (Prolific's START).")


@prolific_group.command("sync")
@_study_options
def sync_command(db_url, study_name, dry_run):
    """List the study's submissions on Prolific and store them (counts by status)."""
    _run(db_url, study_name, dry_run, lambda ops: ops.sync())


@prolific_group.command("approve")
@_study_options
def approve_command(db_url, study_name, dry_run):
    """Approve the synced submissions that `normlime reconcile`'s rules class as approve."""
    _run(db_url, study_name, dry_run, lambda ops: ops.approve())


def _money(_ctx, _param, value):
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not an amount like 10.00") from None
    if not amount.is_finite() or amount <= 0:
        raise click.BadParameter("must be above 0")
    return amount


@prolific_group.command("bonus")
@_study_options
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Lines 'participant id,amount' (amount in the account's currency, e.g. 1.50).",
)
@click.option(
    "--max-bonus",
    default="10.00",
    show_default=True,
    callback=_money,
    help="The largest bonus one participant may get (a guard against typos).",
)
@click.option(
    "--resolve",
    type=click.Choice(["paid", "unpaid"]),
    default=None,
    help="For a payment whose outcome is unknown: what Prolific's web app shows.",
)
def bonus_command(db_url, study_name, dry_run, csv_path, max_bonus, resolve):
    """Pay bonuses from a CSV file: set up once, paid once (re-running the file pays nothing)."""
    _run(
        db_url,
        study_name,
        dry_run,
        lambda ops: ops.bonus(csv_path, max_bonus=max_bonus, resolve=resolve),
    )


COMMANDS = [prolific_group]
