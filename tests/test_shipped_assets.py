"""The shipped model and maps bundle are what their metadata says they are.

`make run` serves `assets/maps/mnist` to participants, so the bundle must belong to the
shipped model, pass its own checksums, and be regenerable from what its manifest records:
the gradient maps exactly, the LIME local explanations image by image.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explainers.bundle import STUDY_METHODS, read_bundle
from explainers.model import file_checksum

from .conftest import REPO, SHIPPED_MODEL

SHIPPED_MAPS = REPO / "assets" / "maps" / "mnist"


@pytest.fixture(scope="module")
def bundle():
    assert (SHIPPED_MAPS / "manifest.json").is_file(), f"shipped bundle missing: {SHIPPED_MAPS}"
    return read_bundle(SHIPPED_MAPS)  # verifies maps.npz and PNG checksums


def test_model_sidecar_matches_the_weights_and_its_accuracy(trained_model, embedded_data):
    from explainers.data import as_float

    meta = json.loads(SHIPPED_MODEL.with_suffix(".json").read_text())
    assert meta["sha256"] == file_checksum(SHIPPED_MODEL)
    assert meta["test_accuracy"] >= 0.99  # full MNIST, the target
    with torch.inference_mode():
        pred = trained_model(as_float(embedded_data.test_images)).argmax(1).numpy()
    # the embedded test images are a sample of the same MNIST test set
    assert (pred == embedded_data.test_labels).mean() >= 0.985


def test_bundle_belongs_to_the_shipped_model(bundle):
    sha = file_checksum(SHIPPED_MODEL)
    manifest = bundle.manifest
    assert manifest["model"]["sha256"] == sha
    for method in STUDY_METHODS:
        assert bundle.maps[method].shape == (10, 28, 28)
        assert np.isfinite(bundle.maps[method]).all()
        assert bundle.maps[method].max() > 0
        info = manifest["methods"][method]
        assert info["model_sha256"] == sha
        assert info["seed"] == manifest["seed"]
        for digit in range(10):
            assert (SHIPPED_MAPS / "png" / f"{method}-{digit}.png").is_file()
    assert manifest["generator"]["preset"] == "stable"
    assert manifest["data"]["source"] == "embedded"  # regenerable without a download


def test_gradient_maps_regenerate_exactly(bundle, trained_model, embedded_data, tmp_path):
    from explainers.precompute import precompute

    result = precompute(
        model_path=SHIPPED_MODEL,
        data=embedded_data,
        out_dir=tmp_path / "regen",
        methods=("smoothgrad", "vargrad"),
        preset=bundle.manifest["generator"]["preset"],
        seed=bundle.manifest["seed"],
        progress=False,
        use_cache=False,
        log=lambda line: None,
    )
    for method in ("smoothgrad", "vargrad"):
        shipped = bundle.manifest["methods"][method]["parameters"]["test_index"]
        regen = result.manifest["methods"][method]["parameters"]["test_index"]
        assert regen == shipped
        expected = bundle.maps[method]
        np.testing.assert_allclose(
            result.maps[method], expected, rtol=1e-4, atol=1e-6 * expected.max()
        )


def test_lime_local_explanations_regenerate_from_recorded_seeds(bundle, embedded_data):
    """Recompute one local explanation per digit with the recorded parameters and seeds;
    their fit quality and explained probability must match what the run stored."""
    from explainers.data import as_float
    from explainers.lime import LocalLime, inference_forward
    from explainers.model import load

    local = np.load(SHIPPED_MAPS / "local.npz")
    params = bundle.manifest["methods"]["normlime"]["parameters"]
    rows = np.array([np.flatnonzero(local["true_label"] == d)[0] for d in range(10)])
    images = as_float(embedded_data.test_images)[torch.as_tensor(local["test_index"][rows])]
    lime = LocalLime(
        inference_forward(load(SHIPPED_MODEL)),
        n_samples=params["n_samples"],
        sigma=params["sigma"],
        n_features=params["n_features"],
        kernel_width=params["kernel_width"],
    )
    out = lime.explain(images, torch.as_tensor(local["pred_label"][rows]), local["seed"][rows])
    np.testing.assert_allclose(out.prob, local["prob"][rows], rtol=1e-6)
    # the shipped run used a torch.compile'd forward: last-digit float differences only
    np.testing.assert_allclose(out.r2, local["r2"][rows], atol=1e-3)


def test_a_smaller_regeneration_agrees_with_the_shipped_class_maps(bundle, embedded_data, tmp_path):
    """The demo preset (the stable settings with 20 instead of 180 explanations per digit)
    from the same model, data and seed must draw the shipped NormLIME/LIME maps again.

    Two independent 20-per-digit runs correlate 0.58-0.82 per digit (docs/explainers-lime.md);
    against the 180-per-digit shipped maps the agreement must be at least that (measured:
    0.70-0.94 for NormLIME, 0.75-0.91 for LIME).
    """
    from explainers.precompute import precompute
    from explainers.stability import pearson_per_class

    result = precompute(
        model_path=SHIPPED_MODEL,
        data=embedded_data,
        out_dir=tmp_path / "small",
        methods=("normlime", "lime"),
        preset="demo",
        seed=bundle.manifest["seed"],
        progress=False,
        use_cache=False,
        compile_model=False,
        log=lambda line: None,
    )
    shipped_lime = bundle.manifest["generator"]["lime"]
    assert result.manifest["generator"]["lime"] == {**shipped_lime, "per_class": 20}
    for method in ("normlime", "lime"):
        r = pearson_per_class(
            result.maps[method].reshape(10, -1), bundle.maps[method].reshape(10, -1)
        )
        assert r.min() >= 0.55 and r.mean() >= 0.7, (method, np.round(r, 3))
