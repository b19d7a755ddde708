"""`normlime precompute` end to end on the embedded data, its cache and its bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from explainers.bundle import STUDY_METHODS, read_bundle
from explainers.cache import LocalCache, explanation_key
from explainers.model import file_checksum
from normlime_cli import cli

from .conftest import SHIPPED_MODEL

TINY = [
    "--data", "embedded", "--preset", "demo",
    "--per-class", "2", "--samples", "150", "--n-features", "40", "--no-compile",
]


def run_cli(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory, trained_model):
    root = tmp_path_factory.mktemp("precompute")
    out, cache = root / "bundle", root / "cache"
    result = run_cli(["precompute", *TINY, "--cache-dir", str(cache), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, cache, result


def test_cli_writes_a_complete_bundle(tiny_bundle, repo_root):
    out, cache, result = tiny_bundle
    assert "embedded MNIST subset" in result.output and "2,000 test images" in result.output
    assert "20 local explanations of train + test images (2 per class)" in result.output
    bundle = read_bundle(out, require=STUDY_METHODS)  # verifies checksums and PNGs
    assert sorted(bundle.maps) == sorted(STUDY_METHODS)
    model_sha = file_checksum(repo_root / "assets" / "model" / "mnist-cnn.pt")
    manifest = bundle.manifest
    assert manifest["model"]["sha256"] == model_sha
    assert manifest["seed"] == 0 and manifest["generator"]["preset"] == "demo"
    assert manifest["local_explanations"]["count"] == 20
    assert len(manifest["maps"]) == 40
    for entry in manifest["maps"]:
        assert entry["model_sha256"] == model_sha
        assert entry["seed"] == 0
        assert entry["wall_time_s"] >= 0
        assert entry["parameters"]["per_class"] == 2
    lime_params = manifest["methods"]["normlime"]["parameters"]
    assert lime_params["n_samples"] == 150 and "display_filter" in lime_params
    assert manifest["methods"]["smoothgrad"]["parameters"]["n_samples"] == 150
    for method, arr in bundle.maps.items():
        assert arr.shape == (10, 28, 28) and np.isfinite(arr).all()
        assert all(arr[d].max() > 0 for d in range(10)), method
    for method in ("normlime", "lime"):  # display maps keep positive evidence only
        assert bundle.maps[method].min() >= 0
    with np.load(out / "local.npz") as z:
        assert z["index"].shape == (20,) and set(np.unique(z["split"])) <= {0, 1}
        np.testing.assert_array_equal(np.bincount(z["true_label"]), [2] * 10)
        raw = z["normlime_raw"]
        shown = bundle.maps["normlime"]
        assert np.all(shown <= raw * (1 + 1e-6))  # the positive part of the signed score
        assert (raw > 0).sum() > (shown > 0).sum()  # the display rule hid something


def test_rerun_hits_the_cache_and_gives_identical_maps(tiny_bundle, tmp_path):
    out, cache, _ = tiny_bundle
    again = tmp_path / "again"
    result = run_cli(["precompute", *TINY, "--cache-dir", str(cache), "--out", str(again)])
    assert result.exit_code == 0, result.output
    assert "20 of 20 local explanations came from the cache" in result.output
    first, second = read_bundle(out), read_bundle(again)
    for method in STUDY_METHODS:
        np.testing.assert_array_equal(first.maps[method], second.maps[method])
    assert second.manifest["local_explanations"]["cache_hits"] == 20


def test_the_forward_batch_size_is_recorded_and_leaves_the_maps_alone(tiny_bundle, tmp_path):
    out, _, _ = tiny_bundle
    other = tmp_path / "batch64"
    result = run_cli(["precompute", *TINY, "--no-cache", "--batch-size", "64", "--out", str(other)])
    assert result.exit_code == 0, result.output
    first, second = read_bundle(out), read_bundle(other)
    assert first.manifest["methods"]["normlime"]["parameters"]["forward_batch_size"] == 200
    assert second.manifest["methods"]["normlime"]["parameters"]["forward_batch_size"] == 64
    # Identical here. Elsewhere oneDNN may round other batch shapes differently, and a
    # near-tie in the LASSO path may then swap a feature in these 2-image class maps; a
    # batching bug (samples mixed up between passes) would leave no resemblance at all.
    for method in STUDY_METHODS:
        a, b = first.maps[method].reshape(10, -1), second.maps[method].reshape(10, -1)
        assert min(np.corrcoef(a[d], b[d])[0, 1] for d in range(10)) > 0.9, method


def test_another_seed_uses_other_images_and_noise(tiny_bundle, tmp_path):
    out, cache, _ = tiny_bundle
    other = tmp_path / "seed1"
    result = run_cli(
        ["precompute", *TINY, "--seed", "1", "--methods", "normlime,lime,random",
         "--cache-dir", str(cache), "--out", str(other)]
    )
    assert result.exit_code == 0, result.output
    assert "0 of 20 local explanations from the cache" in result.output
    with np.load(out / "local.npz") as a, np.load(other / "local.npz") as b:
        assert not np.array_equal(a["index"], b["index"])
    bundle = read_bundle(other, require=("normlime", "lime", "random"))
    assert not np.array_equal(bundle.maps["normlime"], read_bundle(out).maps["normlime"])
    assert bundle.manifest["methods"]["random"]["seed"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--methods", "normlime,bogus"], "unknown method"),
        (["--methods", "lime,lime"], "twice"),
        (["--model", "/nonexistent/model.pt"], "does not exist"),
        (["--data", "/nonexistent/mnist"], "does not exist"),
        (["--per-class", "5000"], "--per-class"),
        (["--preset", "fast"], "Invalid value"),
        (["--samples", "1"], "Invalid value"),
        (["--samples", "15"], "features needs at least"),
        (["--per-class", "1201"], "digit 0 has 1200 usable images"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, tmp_path):
    out = tmp_path / "out"
    base = ["precompute", "--data", "embedded", "--preset", "demo", "--quiet"]
    result = run_cli([*base, *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert not (out / "manifest.json").exists()


def test_out_must_not_be_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("keep me")
    result = run_cli(["precompute", "--data", "embedded", "--out", str(target)])
    assert result.exit_code == 2 and "not a directory" in result.output
    assert target.read_text() == "keep me"


def test_cache_keys_cover_everything_that_determines_an_explanation(tmp_path):
    image = np.zeros((1, 2, 2), dtype=np.float32)
    base = dict(model_sha256="m", image=image, target=3, params={"sigma": 0.2}, seed=5)
    key = explanation_key(**base)
    changed = [
        {**base, "model_sha256": "n"},
        {**base, "image": image + 1 / 255},
        {**base, "image": image.astype(np.float64)},
        {**base, "target": 4},
        {**base, "params": {"sigma": 0.3}},
        {**base, "seed": 6},
    ]
    assert len({key, *(explanation_key(**c) for c in changed)}) == len(changed) + 1
    cache = LocalCache(tmp_path)
    assert cache.get(key) is None
    w = np.array([0.0, 1.5, 0.0, -2.0], dtype=np.float32)
    cache.put(key, w, 0.25, 0.75, 0.9)
    hit = cache.get(key)
    np.testing.assert_array_equal(hit.weights, w)
    assert (hit.intercept, hit.r2, hit.prob) == (0.25, 0.75, 0.9)
    # a truncated entry (e.g. a crash mid-write by another tool) is a miss, not a crash
    path = next(tmp_path.rglob("*.npz"))
    path.write_bytes(path.read_bytes()[:20])
    assert cache.get(key) is None


def test_manifest_is_json_serialisable_and_records_the_images(tiny_bundle):
    from explainers.data import image_digests, load_mnist

    out, _, _ = tiny_bundle
    json.loads((out / "manifest.json").read_text())
    data = load_mnist("embedded")
    splits = (data.train_images, data.test_images), (data.train_labels, data.test_labels)
    with np.load(out / "images.npz") as z:
        for method in ("lime", "smoothgrad", "vargrad"):
            split, index, digest = (z[f"{method}_{k}"] for k in ("split", "index", "digest"))
            pairs = list(zip(split.ravel(), index.ravel(), strict=True))
            images = np.stack([splits[0][s][i] for s, i in pairs])
            labels = np.array([splits[1][s][i] for s, i in pairs])
            np.testing.assert_array_equal(image_digests(images), digest.ravel())
            np.testing.assert_array_equal(np.bincount(labels, minlength=10), [2] * 10)
        assert z["vargrad_index"].shape == (10, 2)


def test_disjoint_from_uses_none_of_the_other_bundles_images(tiny_bundle, tmp_path):
    out, cache, _ = tiny_bundle
    other = tmp_path / "disjoint"
    result = run_cli(
        ["precompute", *TINY, "--seed", "0", "--disjoint-from", str(out),
         "--cache-dir", str(cache), "--out", str(other)]
    )
    assert result.exit_code == 0, result.output
    with np.load(out / "images.npz") as a, np.load(other / "images.npz") as b:
        used = np.concatenate([a[k].ravel() for k in a.files if k.endswith("_digest")])
        for k in b.files:
            if k.endswith("_digest"):
                assert not np.isin(b[k], used).any(), k
    manifest = read_bundle(other).manifest
    assert manifest["generator"]["disjoint_from"] == str(out)


def test_disjoint_from_needs_a_bundle_with_image_records(tmp_path):
    (tmp_path / "old").mkdir()
    result = run_cli(
        ["precompute", *TINY, "--disjoint-from", str(tmp_path / "old"), "--out",
         str(tmp_path / "out")]
    )
    assert result.exit_code == 2 and "images.npz is missing" in result.output
    assert not (tmp_path / "out").exists()


def test_the_default_presets_local_models_are_sparse_so_the_normalisation_acts(tmp_path):
    """Under the stable preset's K and N, |E_y(c_i)| differs between pixels of a class:
    NormLIME's 1/|E_y(c_i)| is not one constant per class (as it was with K = 784)."""
    from explainers.data import load_mnist
    from explainers.normlime import usage_spread
    from explainers.precompute import PRESETS, precompute

    stable = PRESETS["stable"].lime
    assert stable.n_features <= 100 and 2 * stable.n_features <= stable.n_samples
    result = precompute(
        model_path=SHIPPED_MODEL,
        data=load_mnist("embedded"),
        out_dir=tmp_path / "b",
        methods=("normlime", "lime"),
        preset="stable",
        per_class=4,
        seed=3,
        use_cache=False,
        progress=False,
        compile_model=False,
        log=lambda line: None,
    )
    with np.load(tmp_path / "b" / "local.npz") as z:
        usage = z["usage_counts"].reshape(10, -1)
        per_label = np.bincount(z["pred_label"], minlength=10)
    assert (usage.max(1) <= per_label).all()
    assert (usage.sum(1) <= per_label * stable.n_features).all()
    spread = usage_spread(usage)
    assert spread.min() > 0.3, spread
    # a pixel no local model of the class used scores 0 in the class map
    unused = usage == 0
    assert unused.any()
    assert (result.maps["normlime"].reshape(10, -1)[unused] == 0).all()
    assert result.manifest["local_explanations"]["usage_cv_median"] > 0.3
