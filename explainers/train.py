"""Training the paper's CNN, reproducibly from a seed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .data import MnistData, as_float
from .model import CNNConfig, MnistCNN

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train_model",
    "evaluate",
    "pick_device",
    "DeviceError",
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


class DeviceError(ValueError):
    """A ``--device`` that is not a device, or one this machine does not have (one line)."""


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given (validated: cpu, cuda, cuda:N or mps, and present here), else
    CUDA when available, else CPU."""
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
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=config.lr_decay)
    loss_fn = nn.CrossEntropyLoss()
    losses: list[float] = []
    t0 = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(x.shape[0], generator=gen)
        total, batches = 0.0, 0
        for start in range(0, x.shape[0], config.batch_size):
            idx = order[start : start + config.batch_size]
            xb, yb = x[idx].to(dev), y[idx].to(dev)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model.logits(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item()
            batches += 1
        sched.step()
        losses.append(total / max(1, batches))
        if progress:
            progress(epoch + 1, config.epochs, losses[-1])
    wall = time.perf_counter() - t0
    model.eval()
    acc = evaluate(model, as_float(data.test_images), torch.from_numpy(data.test_labels))
    return TrainResult(
        model=model.cpu().eval(), test_accuracy=acc, train_loss=losses, wall_time_s=wall
    )
