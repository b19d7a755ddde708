"""The analysis commands' `--project` refusal; the user-error class is explainers.errors'."""

from __future__ import annotations

import click

from explainers.errors import InputError

__all__ = ["InputError", "mnist_only_project_option"]


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
