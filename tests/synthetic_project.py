"""A synthetic study project whose class is decided by known pixels (tests only).

Each 12x12 image has a bright 3x3 block in one of four places; the block's place is the
class.  The model is fixed (no training): hidden unit k sums block k, the output layer
copies the hidden units, so the known pixels are exactly what the model uses.  Methods:
an oracle that scores the target's block pixels 1 and the rest 0, an edge detector that
ignores the model, and Captum's Saliency.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

SIDE = 12
CORNERS = ((1, 1), (1, 8), (8, 1), (8, 8))

SYNTH = '''
import numpy as np
import torch

SIDE, BLOCK = 12, 3
CORNERS = ((1, 1), (1, 8), (8, 1), (8, 8))


def block_mask(c):
    m = np.zeros((SIDE, SIDE), dtype=np.float32)
    r, k = CORNERS[c]
    m[r:r + BLOCK, k:k + BLOCK] = 1
    return m


def _split(n, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    images = rng.uniform(0.0, 0.3, size=(n, SIDE, SIDE)).astype(np.float32)
    for i, c in enumerate(labels):
        images[i][block_mask(c) > 0] = 1.0
    return images, labels


def data():
    tr, trl = _split(200, 1)
    te, tel = _split(200, 2)
    return {"train_images": tr, "train_labels": trl, "test_images": te, "test_labels": tel}


def data_with_errors():
    """The same, but a fifth of the test images also carry a brighter block of the next
    class: the model answers that class, so it is wrong on them."""
    out = data()
    images, labels = out["test_images"], out["test_labels"]
    for i in range(0, len(images), 5):
        images[i][block_mask((labels[i] + 1) % 4) > 0] = 1.0
        images[i][block_mask(labels[i]) > 0] = 0.8
    return out


def build():
    hidden = torch.nn.Linear(SIDE * SIDE, 4)
    out = torch.nn.Linear(4, 4)
    with torch.no_grad():
        hidden.weight.copy_(torch.as_tensor(np.stack([block_mask(c).ravel() for c in range(4)])))
        hidden.bias.zero_()
        out.weight.copy_(torch.eye(4) * 2.0)
        out.bias.zero_()
    return torch.nn.Sequential(torch.nn.Flatten(), hidden, torch.nn.ReLU(), out)


class Fixed(torch.nn.Module):
    """The same decision with no parameters at all."""

    def __init__(self):
        super().__init__()
        masks = np.stack([block_mask(c).ravel() for c in range(4)])
        self.register_buffer("masks", torch.as_tensor(masks))

    def forward(self, x):
        return x.flatten(1) @ self.masks.T


def build_fixed():
    return Fixed()


def oracle(model, inputs, target):
    return torch.stack([torch.as_tensor(block_mask(int(t))) for t in target])


def edges(model, inputs, target):
    x = inputs[:, 0]
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(x)
    gx[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    gy[:, 1:-1, :] = x[:, 2:, :] - x[:, :-2, :]
    return (gx ** 2 + gy ** 2).sqrt()
'''

STUDY = """
[project]
name = "blocks"
seed = 3
maps = "maps"
cache = "cache"

[model]
callable = "synth:{build}"

[dataset]
kind = "callable"
callable = "synth:{data}"

[classes]
names = ["a", "b", "c", "d"]

[[methods]]
name = "oracle"
kind = "function"
callable = "synth:oracle"

[[methods]]
name = "edges"
kind = "function"
callable = "synth:edges"

[[methods]]
name = "saliency"
kind = "captum"
attribution = "Saliency"
attribute_args = {{ abs = true }}

[per_image]
per_class = 10
images = "test"
"""


def write_project(root: Path, build: str = "build", data: str = "data") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "synth.py").write_text(textwrap.dedent(SYNTH))
    (root / "study.toml").write_text(STUDY.format(build=build, data=data))
    return root
