"""The one error type of the analysis commands."""

from __future__ import annotations

import click

__all__ = ["InputError", "mnist_only_project_option"]


class InputError(click.ClickException):
    """Bad input from the user: one readable line on stderr and exit code 2."""

    exit_code = 2


def mnist_only_project_option(command: str):
    """``--project`` on a command that exists for the MNIST replication only: one line."""

    def refuse(_ctx, _param, value):
        if value is not None:
            raise InputError(
                f"`normlime {command}` runs on the MNIST replication only (the paper's CNN "
                "and data); a study project's maps are checked with `normlime inspect-maps "
                "--project DIR` (see docs/projects.md)"
            )
        return value

    return click.option(
        "--project",
        default=None,
        expose_value=False,
        callback=refuse,
        help="not available: this benchmark is the MNIST replication's",
    )
