"""The one error class for bad input from a user, shared by every ``normlime`` command.

Domain modules raise their own ``ValueError`` subclasses (``DataError``, ``BundleError``,
``ProjectError``...) so that they stay usable without click; the commands turn those into
an :class:`InputError` at the edge.  Torch-free, so the web side can import it.
"""

from __future__ import annotations

import click

__all__ = ["InputError", "UserError", "one_line"]


def one_line(message: object) -> str:
    """A message on one line: a user error never spans a screen of text."""
    return " ".join(str(message).split())


class UserError(ValueError):
    """Bad input or settings a user can fix, said in one line: the base of every domain
    error (``PrecomputeError``, ``ProjectError``, ...) that a command shows as an
    :class:`InputError`."""


class InputError(click.ClickException):
    """Bad input from the user: one readable line on stderr and exit code 2."""

    exit_code = 2

    def __init__(self, message: object):
        super().__init__(one_line(message))
