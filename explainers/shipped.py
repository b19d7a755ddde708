"""What the package ships: the paper's CNN trained on full MNIST and its maps bundle.

Both are package data (pyproject.toml installs the repository's ``assets/`` folder as
``explainers.assets``) and are found through :mod:`importlib.resources`, so a wheel
installed anywhere has them, whatever the working directory.  No torch here: the web
process reads the shipped bundle's location too.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["package_dir", "shipped_model", "shipped_maps"]


def package_dir(package: str) -> Path:
    """The folder of an installed resource package, as a path on disk.

    Wheels and editable installs unpack to files; a zipped install (zipimport) cannot
    serve templates or memory-map arrays, so it is refused in one line.
    """
    root = files(package)
    if not isinstance(root, Path):
        raise RuntimeError(f"{package} is not installed as files on disk; install the wheel "
                           "unpacked (pip does)")  # fmt: skip
    return root


def shipped_model() -> Path:
    """The CNN shipped with the package (``normlime train`` on full MNIST, seed 0)."""
    return package_dir("explainers.assets") / "model" / "mnist-cnn.pt"


def shipped_maps() -> Path:
    """The maps bundle shipped with the package (the stable preset on full MNIST)."""
    return package_dir("explainers.assets") / "maps" / "mnist"
