"""The one error type of the analysis commands."""

from __future__ import annotations

import click

__all__ = ["InputError"]


class InputError(click.ClickException):
    """Bad input from the user: one readable line on stderr and exit code 2."""

    exit_code = 2
