"""The shipped model and maps bundle are what their metadata says they are.

`make run` serves `assets/maps/mnist` to participants, so the bundle must belong to the
shipped model, pass its own checksums, and be regenerable from what its manifest records:
the gradient maps within measured float drift, the LIME local explanations image by image.
The bundle was made from full MNIST (its local models draw their neighbours from the
60,000 training images), so the regeneration tests need the full data (``../shared``;
users get it with ``--data download``).
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
    assert manifest["data"]["description"].startswith("full MNIST")
    assert (manifest["data"]["n_train"], manifest["data"]["n_test"]) == (60000, 10000)
    assert manifest["generator"]["lime"]["neighbourhood"] == "data"
    assert manifest["pictures"]["file"] == "pictures.npz"  # the checks of survey version 2


#: Regenerating the shipped gradient maps on another CPU changes float32 rounding (SIMD
#: width, oneDNN kernels, thread splits).  scripts/float_drift.py provokes those changes
#: here: 1 or 2 threads changed nothing; oneDNN's convolutions off (PyTorch's own kernels)
#: moved the maps by at most DRIFT_MEASURED of a map's maximum (1.0e-3 relative on single
#: values, the size of the AMD EPYC failure that an exact comparison made).  The tolerance
#: is ten times that; the displayed maps must agree to r >= DISPLAYED_R_MIN (measured
#: 1.00000000).
DRIFT_MEASURED = 1.5e-4
DRIFT_TOL = 10 * DRIFT_MEASURED
DISPLAYED_R_MIN = 0.9999


def test_the_renderer_redraws_the_shipped_pngs_byte_for_byte(bundle):
    """The PNGs are the rendering rule applied to the stored maps, nothing else: every
    method's and every class picture's."""
    from explainers.bundle import PICTURE, RENDER_RULE, render_png

    assert bundle.manifest["render"] == RENDER_RULE
    for method in bundle.methods:
        for digit in range(10):
            assert render_png(bundle.maps[method][digit]) == bundle.png_path(
                method, digit
            ).read_bytes(), (method, digit)
    with np.load(SHIPPED_MAPS / "pictures.npz") as z:
        pictures = z["pictures"]
    for digit in range(10):
        png = bundle.png_path(PICTURE, digit).read_bytes()
        assert render_png(pictures[digit]) == png and len(png) == 51253


@pytest.fixture(scope="module")
def full_data(full_mnist_path):
    from explainers.data import load_mnist

    return load_mnist(full_mnist_path)


def test_gradient_maps_regenerate_within_measured_float_drift(bundle, full_data, tmp_path):
    from explainers.precompute import precompute
    from explainers.stability import as_displayed, pearson_per_class

    result = precompute(
        model_path=SHIPPED_MODEL,
        data=full_data,
        out_dir=tmp_path / "regen",
        methods=("smoothgrad", "vargrad"),
        preset=bundle.manifest["generator"]["preset"],
        seed=bundle.manifest["seed"],
        progress=False,
        use_cache=False,
        log=lambda line: None,
    )
    with np.load(SHIPPED_MAPS / "images.npz") as shipped, np.load(
        tmp_path / "regen" / "images.npz"
    ) as regen:
        for method in ("smoothgrad", "vargrad"):
            for key in ("split", "index", "digest"):
                np.testing.assert_array_equal(regen[f"{method}_{key}"], shipped[f"{method}_{key}"])
    for method in ("smoothgrad", "vargrad"):
        expected = bundle.maps[method].astype(np.float64).reshape(10, -1)
        got = result.maps[method].astype(np.float64).reshape(10, -1)
        drift = np.abs(got - expected).max(1) / expected.max(1)
        assert drift.max() <= DRIFT_TOL, (method, drift)
        r = pearson_per_class(as_displayed(got), as_displayed(expected))
        assert r.min() >= DISPLAYED_R_MIN, (method, r)
    assert result.manifest["methods"]["smoothgrad"]["parameters"]["score"] == "logit"


def test_the_shipped_normlime_uses_sparse_local_models(bundle):
    """|E_y(c_i)| varies across pixels, so NormLIME's 1/|E_y(c_i)| normalisation acts."""
    from explainers.normlime import usage_spread

    params = bundle.manifest["methods"]["normlime"]["parameters"]
    assert params["n_features"] < 784 // 4
    with np.load(SHIPPED_MAPS / "local.npz") as local:
        usage = local["usage_counts"].reshape(10, -1)
        per_label = np.bincount(local["pred_label"], minlength=10)
    assert (usage <= per_label[:, None]).all()
    assert np.median(usage_spread(usage)) >= 0.5  # measured 2.03
    # every pixel a digit's local models use is used by some of them, not all: measured
    # 100% (pixels that never vary enough among the drawn neighbours, 57-71% of them,
    # mostly the frame, are used by none)
    used = usage > 0
    partial = ((usage > 0) & (usage < per_label[:, None])).sum(1) / used.sum(1)
    assert partial.min() > 0.95


def test_lime_local_explanations_regenerate_from_recorded_seeds(bundle, full_data):
    """Recompute one local explanation per digit with the recorded parameters and seeds,
    drawing neighbours from the same 60,000 training images; their fit quality, selected
    pixels and explained probability must match what the run stored."""
    from explainers.data import as_float, image_pool
    from explainers.lime import LocalLime, inference_forward
    from explainers.model import load
    from explainers.neighbourhood import DataNeighbourhood
    from explainers.precompute import model_outputs

    local = np.load(SHIPPED_MAPS / "local.npz")
    params = bundle.manifest["methods"]["normlime"]["parameters"]
    assert params["neighbourhood"] == "data" and params["min_varying"] == 10
    pool = image_pool(full_data, params["image_pool"])
    rows = np.array([np.flatnonzero(local["true_label"] == d)[0] for d in range(10)])
    pairs = zip(pool.split, pool.index, strict=True)
    position = {(int(s), int(i)): k for k, (s, i) in enumerate(pairs)}
    where = [position[(int(local["split"][r]), int(local["index"][r]))] for r in rows]
    images = as_float(pool.images[where])
    forward = inference_forward(load(SHIPPED_MODEL))
    train = as_float(image_pool(full_data, "train").images)
    assert train.shape[0] == params["pool_size"]
    nb = DataNeighbourhood(
        train, model_outputs(forward, train, "cpu"), effective_size=params["effective_size"]
    )
    lime = LocalLime(
        forward,
        n_samples=params["n_samples"],
        n_features=params["n_features"],
        neighbourhood=nb,
    )
    out = lime.explain(images, torch.as_tensor(local["pred_label"][rows]), local["seed"][rows])
    np.testing.assert_allclose(out.prob, local["prob"][rows], rtol=1e-6)
    np.testing.assert_allclose(out.r2, local["r2"][rows], atol=LIME_R2_TOL)


#: max |R^2 difference| allowed between the shipped run and this regeneration.  Measured
#: 0 on the CPU that made the bundle (the same arithmetic).  On another CPU float32
#: rounding of the distances moves draws across boundaries of the cumulative
#: probabilities, and the K = 10 support can then change: on an AVX-512/AMX Xeon
#: (2026-12-05) 8 of the 10 digits matched exactly and the other two moved by 0.0296 and
#: 0.0125.  The bound is twice the worst of those.
LIME_R2_TOL = 0.06


def test_a_smaller_regeneration_agrees_with_the_shipped_class_maps(bundle, full_data, tmp_path):
    """The demo preset (the stable settings with fewer explanations per digit) from the same
    model, data and seed must draw the shipped NormLIME/LIME maps again.

    Bounds: SMALL_R_BOUNDS, the measured agreement (40 against 2,700 explanations per digit,
    full MNIST: NormLIME worst digit 0.283, mean 0.393; LIME 0.791, 0.852) minus about 0.1.
    NormLIME's is low because its class maps converge slowly (docs/stimuli.md, part two).
    """
    from explainers.precompute import PRESETS, precompute
    from explainers.stability import as_displayed, pearson_per_class

    result = precompute(
        model_path=SHIPPED_MODEL,
        data=full_data,
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
    demo = PRESETS["demo"].lime.per_class
    assert result.manifest["generator"]["lime"] == {**shipped_lime, "per_class": demo}
    for method in ("normlime", "lime"):
        r = pearson_per_class(
            as_displayed(result.maps[method].reshape(10, -1)),
            as_displayed(bundle.maps[method].reshape(10, -1)),
        )
        lo_min, lo_mean = SMALL_R_BOUNDS[method]
        assert r.min() >= lo_min and r.mean() >= lo_mean, (method, np.round(r, 3))


#: (worst digit, mean) lower bounds for the demo-vs-shipped correlation
SMALL_R_BOUNDS = {"normlime": (0.18, 0.29), "lime": (0.69, 0.75)}
