"""``normlime train`` and ``normlime precompute``.

Heavy imports (torch, the explainers) happen inside the commands so that composing this
module into the ``normlime`` group costs nothing for the web-server commands.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import click

__all__ = ["COMMANDS", "InputError", "data_option", "load_data_or_fail"]


class InputError(click.ClickException):
    """Bad input from the user: one readable line on stderr and exit code 2."""

    exit_code = 2


def data_option(default: str = "embedded"):
    return click.option(
        "--data",
        "data_spec",
        default=default,
        show_default=True,
        metavar="PATH|embedded|download",
        help="MNIST source: a directory with the IDX files (or its MNIST/raw), the embedded "
        "subset, or torchvision's download into ~/.cache/normlime.",
    )


def load_data_or_fail(spec: str):
    """Load MNIST for a command and print which data it uses (or fail with exit 2)."""
    from .data import DataError, load_mnist

    try:
        data = load_mnist(spec)
    except DataError as exc:
        raise InputError(str(exc)) from None
    click.echo(data.summary(), err=True)
    return data


@click.command("train")
@data_option()
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="seeds weight init, dropout and shuffling",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option(
    "--device", default=None, help="torch device (default: cuda when available, else cpu)"
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="where to write the weights (a JSON sidecar is written next to it)",
)
def train_command(data_spec, epochs, seed, batch_size, lr, device, out_path):
    """Train the paper's CNN and save weights plus a JSON sidecar with its test accuracy."""
    import torch

    from .model import save
    from .train import TrainConfig, train_model

    data = load_data_or_fail(data_spec)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    with click.progressbar(
        length=epochs, label="training", file=sys.stderr
    ) as bar:

        def progress(epoch, total, loss):
            bar.label = f"training (epoch {epoch}/{total}, loss {loss:.4f})"
            bar.update(1)

        result = train_model(data, config, device=device, progress=progress)
    meta = {
        "test_accuracy": result.test_accuracy,
        "data": data.provenance(),
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "lr_decay": config.lr_decay,
        "train_loss": result.train_loss,
        "wall_time_s": round(result.wall_time_s, 2),
        "torch": torch.__version__,
        "device": str(next(result.model.parameters()).device) if device is None else device,
        "platform": platform.platform(),
    }
    save(result.model, out_path, meta)
    click.echo(
        f"test accuracy {result.test_accuracy:.2%} after {epochs} epochs "
        f"({result.wall_time_s:.0f} s); wrote {out_path} and {out_path.with_suffix('.json')}"
    )


def _dump(obj) -> str:
    return json.dumps(obj, indent=2)


COMMANDS = [train_command]
