"""Device selection: the one place that turns ``--device`` (or nothing) into a torch device.

``device_option`` validates while click parses, so a bad device is one line and exit code
2 before any work starts.  torch is imported only when a device is picked.
"""

from __future__ import annotations

import click

from .errors import InputError

__all__ = ["DeviceError", "device_option", "pick_device"]


class DeviceError(ValueError):
    """A ``--device`` that is not a device, or one this machine does not have (one line)."""


def pick_device(device: str | None = None):
    """``device`` if given (validated: cpu, cuda, cuda:N or mps, and present here), else
    CUDA when available, else CPU.  Returns a ``torch.device``."""
    import torch

    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(str(device))
    except (RuntimeError, ValueError):
        raise DeviceError(
            f"--device {device!r} is not a device; use cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {device}: this machine has no usable CUDA device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"--device {device}: Apple's MPS is not available here")
    elif dev.type != "cpu":
        raise DeviceError(f"--device {device!r}: use cpu, cuda, cuda:N or mps")
    return dev


def _check_device(_ctx, _param, value):
    if value is None:
        return None
    try:
        pick_device(value)
    except DeviceError as exc:
        raise InputError(str(exc)) from None
    return value


def device_option(func):
    """``--device``: validated while parsing (one line and exit code 2, never a traceback)."""
    return click.option(
        "--device",
        default=None,
        callback=_check_device,
        help="torch device: cpu, cuda, cuda:N or mps (default: cuda when available, else cpu)",
    )(func)
