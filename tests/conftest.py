"""Shared fixtures: data, models and paths every test area uses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: the study-server tests' fixtures (bundle, SQLite/PostgreSQL databases, servers)
pytest_plugins = ["tests.server_fixtures"]

REPO = Path(__file__).resolve().parent.parent
#: full MNIST as the workplace provides it (CI and developers have it when present)
SHARED_MNIST = Path(
    os.environ.get("NORMLIME_SHARED_MNIST", REPO.parent / "shared" / "data" / "mnist")
)
#: the model shipped in the repository (trained on full MNIST by `normlime train`)
SHIPPED_MODEL = REPO / "assets" / "model" / "mnist-cnn.pt"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def embedded_data():
    from explainers.data import load_mnist

    return load_mnist("embedded")


@pytest.fixture(scope="session")
def full_mnist_path() -> Path:
    """Path of the full MNIST IDX files; tests needing it skip where the workplace lacks it."""
    if not (SHARED_MNIST / "MNIST" / "raw").is_dir():
        pytest.skip(f"full MNIST not present at {SHARED_MNIST}")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def trained_model():
    """The shipped trained CNN (eval mode, CPU)."""
    from explainers.model import load

    assert SHIPPED_MODEL.is_file(), f"shipped model missing: {SHIPPED_MODEL}"
    return load(SHIPPED_MODEL)


@pytest.fixture(scope="session")
def random_model():
    """The same architecture with random weights (Adebayo et al.'s model-randomisation test)."""
    import torch

    from explainers.model import MnistCNN

    torch.manual_seed(1234)
    return MnistCNN().eval()


@pytest.fixture(scope="session")
def test_images(embedded_data):
    """A fixed, class-balanced batch of 50 embedded test images (5 per digit) and labels."""
    import torch

    from explainers.data import as_float, stratified_sample

    idx = stratified_sample(embedded_data.test_labels, 5, random_state=0)
    return as_float(embedded_data.test_images[idx]), torch.from_numpy(
        embedded_data.test_labels[idx]
    )
