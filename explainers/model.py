"""The NormLIME paper's MNIST CNN.

Paper (Experimental Design): "two blocks of convolution plus max-pooling operations,
followed by three fully connected layers with dropout in-between, and a final softmax
operation. The number of hidden units for the three layers was 128, 128, and 10."

The paper gives no channel widths or kernel sizes; we choose 32 and 64 channels with 3x3
kernels, stride 1, "same" padding and 2x2 max-pooling, and dropout p=0.5 between the fully
connected layers (documented in the README).

The model takes pixel values in [0, 1] with shape (N, 1, 28, 28).  Standardisation with
the MNIST training mean and standard deviation happens inside ``forward``, so Captum or
any other tool can call the model directly on raw pixels.  ``forward`` returns softmax
probabilities (the paper's f); ``logits`` returns the pre-softmax scores for training.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = ["CNNConfig", "MnistCNN", "MNIST_MEAN", "MNIST_STD", "load", "save", "file_checksum"]

#: training-set statistics of MNIST in [0, 1] pixel units
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


@dataclass(frozen=True)
class CNNConfig:
    """Architecture hyper-parameters (saved with the weights)."""

    conv_channels: tuple[int, int] = (32, 64)
    kernel_size: int = 3
    hidden: tuple[int, int] = (128, 128)
    dropout: float = 0.5
    n_classes: int = 10

    @classmethod
    def from_dict(cls, d: dict) -> CNNConfig:
        return cls(
            conv_channels=tuple(d.get("conv_channels", cls.conv_channels)),
            kernel_size=int(d.get("kernel_size", cls.kernel_size)),
            hidden=tuple(d.get("hidden", cls.hidden)),
            dropout=float(d.get("dropout", cls.dropout)),
            n_classes=int(d.get("n_classes", cls.n_classes)),
        )


class MnistCNN(nn.Module):
    """conv-ReLU-pool, conv-ReLU-pool, FC 128-ReLU-dropout-128-ReLU-dropout-10, softmax."""

    def __init__(self, config: CNNConfig | None = None):
        super().__init__()
        self.config = config or CNNConfig()
        c1, c2 = self.config.conv_channels
        k = self.config.kernel_size
        h1, h2 = self.config.hidden
        self.register_buffer("mean", torch.tensor(MNIST_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(MNIST_STD), persistent=False)
        self.conv1 = nn.Conv2d(1, c1, k, padding=k // 2)
        self.conv2 = nn.Conv2d(c1, c2, k, padding=k // 2)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(c2 * 7 * 7, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc3 = nn.Linear(h2, self.config.n_classes)
        self.dropout = nn.Dropout(self.config.dropout)

    # The network is split at the output of the second convolution so that the KAR
    # benchmark can mask "conv features" (paper: the output of the second conv layer).
    def conv_features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the second conv layer (after its ReLU, before pooling): (N, C2, 14, 14)."""
        x = (x - self.mean) / self.std
        x = self.pool(torch.relu(self.conv1(x)))
        return torch.relu(self.conv2(x))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from second-conv-layer features."""
        x = self.pool(features).flatten(1)
        x = self.dropout(torch.relu(self.fc1(x)))
        x = self.dropout(torch.relu(self.fc2(x)))
        return self.fc3(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (softmax) for pixel inputs in [0, 1], shape (N, 1, 28, 28)."""
        return torch.softmax(self.logits(x), dim=1)


def file_checksum(path: str | Path) -> str:
    """sha256 of a file, recorded in manifests so maps can be traced to their model."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save(model: MnistCNN, path: str | Path, metadata: dict | None = None) -> Path:
    """Save weights + architecture to ``path`` and ``metadata`` to ``path.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": asdict(model.config), "state_dict": state}, path)
    if metadata is not None:
        meta = dict(metadata)
        meta["sha256"] = file_checksum(path)
        meta["architecture"] = asdict(model.config)
        sidecar_path(path).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def sidecar_path(path: str | Path) -> Path:
    """``model.pt`` -> ``model.json``."""
    return Path(path).with_suffix(".json")


class ModelFileError(ValueError):
    """The model file is missing or is not a saved MnistCNN."""


def load(path: str | Path, map_location: str | torch.device = "cpu") -> MnistCNN:
    """Load a model saved by :func:`save`, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist (train one with `normlime train`)")
    return _load_from(path, path, map_location)


def load_bytes(data: bytes, map_location: str | torch.device = "cpu") -> MnistCNN:
    """:func:`load` from the bytes of a model file (what distributed workers receive)."""
    import io

    return _load_from(io.BytesIO(data), "the model bytes", map_location)


def _load_from(source, name, map_location) -> MnistCNN:
    path = name
    try:
        blob = torch.load(source, map_location=map_location, weights_only=True)
        model = MnistCNN(CNNConfig.from_dict(blob["config"]))
        model.load_state_dict(blob["state_dict"])
    except Exception as exc:  # corrupt file, foreign checkpoint, wrong shapes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path} is not a normlime model file ({first})") from None
    return model.to(map_location).eval()
