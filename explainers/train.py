"""Training the paper's CNN, reproducibly from a seed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .data import MnistData, as_float
from .devices import pick_device
from .model import CNNConfig, MnistCNN

__all__ = [
    "train_to_file",
    "fit",
    "TrainConfig",
    "TrainResult",
    "train_model",
    "evaluate",
    "seed_everything",
]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Defaults reach >= 99.0% on full MNIST in 6 epochs."""

    epochs: int = 6
    batch_size: int = 128
    lr: float = 1e-3
    lr_decay: float = 0.7  # multiplicative per epoch (StepLR, step 1)
    weight_decay: float = 0.0
    seed: int = 0


@dataclass
class TrainResult:
    model: MnistCNN
    test_accuracy: float
    train_loss: list[float]
    wall_time_s: float


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (weight init, dropout) and return a generator for shuffling."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@torch.inference_mode()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> float:
    """Top-1 accuracy of ``model`` (probabilities or logits) on float images."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        out = model(images[start : start + batch_size].to(device))
        correct += (out.argmax(1).cpu() == labels[start : start + batch_size]).sum().item()
    model.train(was_training)
    return correct / max(1, images.shape[0])


def train_model(
    data: MnistData,
    config: TrainConfig = TrainConfig(),
    *,
    model_config: CNNConfig | None = None,
    device: str | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    model: nn.Module | None = None,
) -> TrainResult:
    """Train a fresh :class:`MnistCNN` on ``data.train_*`` and report test accuracy.

    ``model`` trains that module instead (anything with ``logits(x)``, such as a study
    project's ``explainers.user_model.Classifier``); its initial weights are its own.
    ``progress(epoch, epochs, mean_loss)`` is called after each epoch.
    """
    if config.epochs < 1:
        raise ValueError("epochs must be at least 1")
    if data.n_train == 0:
        raise ValueError("the data has no training images")
    dev = pick_device(device)
    gen = seed_everything(config.seed)
    model = (MnistCNN(model_config) if model is None else model).to(dev)
    x = as_float(data.train_images)
    y = torch.from_numpy(np.asarray(data.train_labels, dtype=np.int64))
    t0 = time.perf_counter()
    losses = fit(
        model, model.parameters(), model.logits, lambda idx: x[idx], y, config,
        generator=gen, device=dev, progress=progress,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    model.eval()
    acc = evaluate(model, as_float(data.test_images), torch.from_numpy(data.test_labels))
    return TrainResult(
        model=model.cpu().eval(), test_accuracy=acc, train_loss=losses, wall_time_s=wall
    )


def fit(
    model: nn.Module,
    params,
    forward: Callable[[torch.Tensor], torch.Tensor],
    batch_fn: Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    config: TrainConfig,
    *,
    generator: torch.Generator,
    device,
    progress: Callable[[int, int, float], None] | None = None,
) -> list[float]:
    """The one training loop: the paper's CNN's (:func:`train_model`) and KAR's retraining.

    ``batch_fn(idx)`` returns the inputs of the rows ``idx`` (KAR: masked), ``forward``
    maps them to logits, and only ``params`` are optimised: Adam, StepLR with gamma
    ``lr_decay`` per epoch, cross-entropy, data order from ``randperm(generator)``.
    Returns the mean loss of each epoch; ``model`` is left in eval mode.
    """
    n = int(y.shape[0])
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=config.lr_decay)
    loss_fn = nn.CrossEntropyLoss()
    losses: list[float] = []
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        total, batches = 0.0, 0
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            xb, yb = batch_fn(idx).to(device), y[idx].to(device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(forward(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item()
            batches += 1
        sched.step()
        losses.append(total / max(1, batches))
        if progress:
            progress(epoch + 1, config.epochs, losses[-1])
    model.eval()
    return losses


def train_to_file(
    data: MnistData,
    config: TrainConfig,
    out_path,
    *,
    device: str | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train the paper's CNN and save its weights with a JSON sidecar (test accuracy, data,
    settings, versions): what ``normlime train`` writes."""
    import platform

    from .model import save

    result = train_model(data, config, device=device, progress=progress)
    meta = {
        "test_accuracy": result.test_accuracy,
        "data": data.provenance(),
        "seed": config.seed,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "lr_decay": config.lr_decay,
        "train_loss": result.train_loss,
        "wall_time_s": round(result.wall_time_s, 2),
        "torch": torch.__version__,
        "device": str(next(result.model.parameters()).device) if device is None else device,
        "platform": platform.platform(),
    }
    save(result.model, out_path, meta)
    return result
