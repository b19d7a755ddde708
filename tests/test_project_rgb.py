"""RGB images, overlays, grid features, GradCAM, a user's function: a synthetic project.

Four classes of 3 x 32 x 32 images: a coloured 8 x 8 square (red, green, blue, yellow)
whose place depends on the class, on a noisy grey background.  The model can only tell
the classes apart by the square, so every faithful class map puts its mass there.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from explainers.bundle import read_bundle
from tests.project_fixtures import run_cli

COLOURS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=np.float32)
CORNERS = [(4, 4), (4, 20), (20, 4), (20, 20)]
NAMES = ["red", "green", "blue", "yellow"]

DATA_PY = '''
import numpy as np

COLOURS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=np.float32)
CORNERS = [(4, 4), (4, 20), (20, 4), (20, 20)]


def squares(n_per_class=60, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), n_per_class)
    images = np.clip(0.5 + 0.15 * rng.standard_normal((labels.size, 3, 32, 32)), 0, 1)
    for i, c in enumerate(labels):
        r, k = CORNERS[c]
        images[i, :, r:r + 8, k:k + 8] = COLOURS[c][:, None, None]
    order = rng.permutation(labels.size)
    images, labels = images[order].astype(np.float32), labels[order]
    half = labels.size // 2
    return {"train_images": images[:half], "train_labels": labels[:half],
            "test_images": images[half:], "test_labels": labels[half:]}


def squares_test_only():
    out = squares(n_per_class=6, seed=1)
    return (np.concatenate([out["train_images"], out["test_images"]]),
            np.concatenate([out["train_labels"], out["test_labels"]]))
'''

MODEL_PY = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.head(x.amax(dim=(2, 3)))


def build():
    return Net()


def input_x_gradient(model, inputs, target):
    x = inputs.clone().requires_grad_(True)
    score = model.logits(x).gather(1, target[:, None]).sum()
    (grad,) = torch.autograd.grad(score, x)
    return (x * grad).detach()
'''

STUDY_TOML = '''
[project]
name = "squares"
seed = 3

[model]
callable = "squares_model:build"
weights = "weights.pt"

[model.input]
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]

[dataset]
kind = "callable"
callable = "squares_data:squares"

[classes]
names = ["red", "green", "blue", "yellow"]

[[methods]]
name = "normlime"
kind = "normlime"

[[methods]]
name = "gradcam"
kind = "captum"
attribution = "LayerGradCam"
layer = "conv2"

[[methods]]
name = "smoothgrad"
kind = "smoothgrad"
n_samples = 16
sigma = 0.1

[[methods]]
name = "input_x_gradient"
kind = "function"
callable = "squares_model:input_x_gradient"

[lime]
per_class = 10
n_samples = 400
n_features = 8
features = { kind = "grid", cell = 4 }
perturbation = "hide"

[per_image]
per_class = 8

[survey]
classes = ["red", "blue", "yellow"]
repeats = 2
attention_checks = 2
display = "overlay"

[train]
epochs = 15
lr = 0.01
'''


def write_squares_project(root):
    root.mkdir(parents=True, exist_ok=True)
    (root / "squares_data.py").write_text(textwrap.dedent(DATA_PY))
    (root / "squares_model.py").write_text(textwrap.dedent(MODEL_PY))
    (root / "study.toml").write_text(STUDY_TOML)
    return root


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    root = write_squares_project(tmp_path_factory.mktemp("squares"))
    run_cli("train", "--project", root)
    run_cli("precompute", "--project", root, "--quiet")
    return read_bundle(root / "maps")


def test_rgb_maps_are_overlays_of_one_representative_image_per_class(squares):
    man = squares.manifest
    assert squares.display == "overlay" and squares.map_shape == (32, 32)
    assert squares.classes == NAMES
    assert man["model"]["test_accuracy"] >= 0.95
    png = squares.png_path("gradcam", 0).read_bytes()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height, png[25]) == (224, 224, 2)  # 7x zoom, truecolour
    sizes = {(squares.root / e["png"]).stat().st_size for e in man["maps"]}
    assert len(sizes) == 1
    with np.load(squares.root / man["representatives"]["file"]) as z:
        reps = z["images"]
    assert reps.shape == (4, 3, 32, 32)
    for c, (r, k) in enumerate(CORNERS):  # each representative shows its own square
        np.testing.assert_allclose(reps[c][:, r + 2, k + 2], COLOURS[c], atol=1 / 255)
    assert man["render"]["overlay"].startswith("the colormap's colour blended")
    assert "summed over the image's channels" in man["channels"]


def test_every_method_puts_its_mass_on_the_class_square(squares):
    """The square is 1/16 of the image.  Measured shares of the positive mass: GradCAM
    0.21-0.84, SmoothGrad 0.23-0.68, NormLIME (hidden superpixels) 0.64-0.70, the user's
    input x gradient 0.65-0.89; a map blind to the square would get about 1/16."""
    for method in squares.methods:
        for c, (r, k) in enumerate(CORNERS):
            m = np.clip(squares.maps[method][c], 0, None)
            share = m[r : r + 8, k : k + 8].sum() / m.sum()
            assert share > 2 / 16, (method, NAMES[c], round(float(share), 3))


def test_the_survey_block_asks_the_chosen_classes_with_lookalikes(squares):
    survey = squares.survey
    assert survey["methods"] == ["normlime", "gradcam", "smoothgrad", "input_x_gradient"]
    assert survey["classes"] == [0, 2, 3]
    assert survey["display"] == "overlay"
    assert all(int(c) != j for c, j in survey["lookalike"].items())
    params = squares.manifest["methods"]
    assert params["gradcam"]["parameters"]["layer"] == "conv2"
    lime = json.dumps(params["normlime"]["parameters"])
    assert "fixed grid of 64 cells" in lime


def test_the_python_api_takes_an_nn_module(tmp_path):
    """precompute_project(model=...) with an nn.Module, no weights file (issue: an
    nn.Module used to be a TypeError)."""
    import torch

    from explainers.project import load_project
    from explainers.project_precompute import precompute_project

    root = write_squares_project(tmp_path / "api")
    project = load_project(root)
    project.importable()
    import squares_model

    torch.manual_seed(0)
    net = squares_model.build()
    result = precompute_project(project, model=net, progress=False, log=lambda line: None)
    assert set(result.maps) == {"normlime", "gradcam", "smoothgrad", "input_x_gradient"}
    assert all(m.shape == (4, 32, 32) for m in result.maps.values())
    # a dataset of (images, labels) alone: one split, used as the test images
    toml = root / "study.toml"
    toml.write_text(toml.read_text().replace('"squares_data:squares"',
                                             '"squares_data:squares_test_only"')
                    .replace("per_class = 10\n", "per_class = 5\n")
                    .replace("per_class = 8\n", "per_class = 5\n"))  # fmt: skip
    result = precompute_project(load_project(root), model=net, progress=False,
                                log=lambda line: None, out_dir=tmp_path / "one-split")  # fmt: skip
    assert result.manifest["data"]["n_train"] == 0
    assert all(m.shape == (4, 32, 32) for m in result.maps.values())
    with pytest.raises(ValueError, match="must be a torch nn.Module, got str"):
        precompute_project(project, model="net.pt", progress=False, log=lambda line: None)
