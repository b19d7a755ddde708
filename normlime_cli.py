"""The one ``normlime`` command line.

Each package contributes its own subcommands (``explainers.cli``, ``analysis.cli``,
``study_server.cli``); this module only composes them.  The package CLI modules import
their heavy dependencies inside the command bodies, so ``normlime serve`` never imports
torch and ``normlime --help`` starts instantly.
"""

from __future__ import annotations

import sys

import click

from analysis.cli import COMMANDS as ANALYSIS_COMMANDS
from explainers.cli import COMMANDS as EXPLAINER_COMMANDS
from study_server.cli import COMMANDS as SERVER_COMMANDS
from study_server.prolific_cli import COMMANDS as PROLIFIC_COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="normlime-study")
def cli() -> None:
    """Reproduce the NormLIME human study and its numerical benchmarks."""


for _command in (*EXPLAINER_COMMANDS, *ANALYSIS_COMMANDS, *SERVER_COMMANDS, *PROLIFIC_COMMANDS):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    Usage errors and :class:`click.ClickException` print one readable line and exit with
    code 2 (bad input) or 1; anything else is a bug and keeps its traceback.
    """
    cli.main(args=argv, prog_name="normlime", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
