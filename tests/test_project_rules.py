"""The stated steps of a project's precompute: look-alikes, representatives, method seeds."""

from __future__ import annotations

import numpy as np

from explainers.precompute import method_seed
from explainers.project import MethodConfig
from explainers.project_precompute import lookalikes, representatives


def test_lookalikes_come_from_confusions_both_ways_then_the_nearest_mean():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3])
    pred = np.array([0, 1, 0, 2, 1, 1, 2, 3, 3])  # 0->1 once, 1->2 once, 2->1 once
    means = np.array([[0.0], [5.0], [9.0], [8.0]])
    look, confusion = lookalikes(labels, pred, means)
    # 1 is confused with 0 once and with 2 twice (both ways); 3 is never confused: the
    # class whose mean is nearest (2 at distance 1)
    assert look == {0: 1, 1: 2, 2: 1, 3: 2}
    assert confusion[1] == [0, 1, 1, 0] and np.trace(np.array(confusion)) == 6


def test_lookalike_ties_go_to_the_lower_class():
    labels = np.array([0, 0, 1, 2])
    pred = np.array([1, 2, 1, 2])
    look, _ = lookalikes(labels, pred, np.zeros((3, 1)))
    assert look[0] == 1


def test_representatives_are_correct_images_nearest_their_mean():
    images = np.zeros((6, 1, 2, 2), dtype=np.uint8)
    images[:, 0, 0, 0] = [10, 50, 60, 200, 210, 255]
    labels = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([0, 0, 0, 1, 0, 0])  # class 1: only image 3 is classified right
    reps, chosen = representatives(images, labels, pred, 2)
    assert chosen == [1, 3]  # 50 is nearest the mean 40 of {10, 50, 60}
    assert reps.shape == (2, 1, 2, 2) and reps.max() <= 1.0
    _, chosen = representatives(images, labels, np.full(6, 2), 2)  # none right: all of them
    assert chosen == [1, 4]


def test_method_seeds_follow_names_not_positions():
    a = MethodConfig("integrated_gradients", "captum", {"attribution": "IntegratedGradients"})
    b = MethodConfig("saliency", "captum", {"attribution": "Saliency"})
    assert method_seed(0, a.name, a.kind, a.params) == method_seed(0, a.name, a.kind, a.params)
    assert method_seed(0, a.name, a.kind, a.params) != method_seed(0, b.name, b.kind, b.params)
    assert method_seed(0, a.name, a.kind, a.params) != method_seed(1, a.name, a.kind, a.params)
    # a registered method used as it is keeps the MNIST replication's seed
    assert method_seed(5, "smoothgrad", "smoothgrad", {}) == method_seed(
        5, "smoothgrad"
    )
    assert method_seed(5, "smoothgrad", "smoothgrad", {"n_samples": 9}) \
        != method_seed(5, "smoothgrad")  # fmt: skip


def test_an_image_folder_loads_as_uint8_nchw_with_the_projects_labels(tmp_path):
    from PIL import Image

    from explainers.datasets import load_dataset

    for name, value in (("cat", 40), ("dog", 200)):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for k in range(3):
            Image.new("RGB", (12, 10), (value, k, 0)).save(tmp_path / "imgs" / name / f"{k}.png")
    spec = {"kind": "imagefolder", "path": "imgs", "size": [8, 6], "channels": 3}
    data = load_dataset(spec, tmp_path, ["dog", "cat"])
    assert data.test_images.shape == (6, 3, 8, 6) and data.test_images.dtype == np.uint8
    assert data.test_labels.tolist() == [1, 1, 1, 0, 0, 0]  # folder names -> class indices
    assert data.test_images[0, 0].max() == 40 and data.test_images[3, 0].min() == 200
    assert data.n_train == 0
