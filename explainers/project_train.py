"""``normlime train --project DIR``: train a project's own network on its training split.

Only for a ``[model] callable`` with ``weights``: the callable builds the architecture
(seeded, so its initial weights are reproducible), :func:`explainers.train.train_model`
fits it with cross-entropy and Adam on the project's training images, and the state dict
of the network goes to ``weights`` with a JSON sidecar (accuracy, seed, settings).  A
project whose model is a file was trained elsewhere and has nothing to train here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from .datasets import load_dataset
from .project import Project, ProjectError
from .train import TrainConfig, seed_everything, train_model
from .user_model import load_classifier

__all__ = ["train_project"]


def train_project(
    project: Project, *, device: str | None = None, log: Callable[[str], None] = print
) -> dict:
    """Train, save the weights and sidecar; returns the sidecar's content."""
    spec = project.model
    if not spec.get("callable") or not spec.get("weights"):
        raise ProjectError(
            f"{project.path}: `normlime train --project` trains a [model] callable into its "
            "weights file; this project's model is a file trained elsewhere"
        )
    project.importable()
    data = load_dataset(project.dataset, project.root, project.class_names)
    if data.n_train == 0:
        raise ProjectError(f"{project.path}: the dataset has no training split to train on")
    seed_everything(project.seed)
    model, _ = load_classifier(
        spec, project.root, n_classes=len(project.class_names),
        input_shape=tuple(data.train_images.shape[1:]), weights=False,
    )  # fmt: skip
    t = project.train
    config = TrainConfig(
        epochs=t["epochs"], batch_size=t["batch_size"], lr=t["lr"], lr_decay=1.0,
        seed=project.seed,
    )  # fmt: skip
    result = train_model(
        data, config, device=device, model=model,
        progress=lambda e, n, loss: log(f"epoch {e}/{n}: loss {loss:.4f}"),
    )  # fmt: skip
    path = project.root / spec["weights"]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result.model.net.state_dict(), path)
    sidecar = {
        "project": project.name,
        "test_accuracy": round(result.test_accuracy, 4),
        "seed": project.seed,
        "train": t,
        "n_train": data.n_train,
        "n_test": data.n_test,
        "wall_time_s": round(result.wall_time_s, 2),
    }
    Path(path).with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return sidecar
