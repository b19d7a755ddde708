"""A second real dataset end to end, offline: scikit-learn's 8x8 digits.

`normlime init-project`, `train --project`, `precompute --project`: a small CNN trained in
seconds, NormLIME from local LIME explanations and two Captum methods; then the survey
taken through the test client, the export, and the analysis of any number of methods.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from explainers.bundle import read_bundle
from tests.project_fixtures import digits_project, run_cli
from tests.server_fixtures import Walker, make_server, participant_items

METHODS = ["normlime", "integrated_gradients", "saliency"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = digits_project(tmp_path_factory.mktemp("digits"))
    run_cli("train", "--project", root)
    run_cli("precompute", "--project", root, "--quiet")
    return root


@pytest.fixture(scope="module")
def bundle(project):
    return read_bundle(project / "maps")


def test_the_bundle_is_version_2_with_the_projects_classes_methods_and_survey(bundle):
    assert bundle.version == 2
    assert bundle.classes == [str(d) for d in range(10)]
    assert bundle.map_shape == (8, 8)
    assert bundle.methods == sorted(METHODS)
    assert bundle.study_methods == METHODS
    for m in METHODS:
        arr = bundle.maps[m]
        assert arr.shape == (10, 8, 8) and np.isfinite(arr).all() and arr.max() > 0
    survey = bundle.survey
    assert survey["methods"] == METHODS and survey["classes"] == list(range(10))
    assert (survey["repeats"], survey["attention_checks"]) == (1, 3)
    look = {int(c): j for c, j in survey["lookalike"].items()}
    assert set(look) == set(range(10)) and all(look[c] != c for c in look)
    man = bundle.manifest
    assert man["model"]["test_accuracy"] >= 0.9
    params = man["methods"]["integrated_gradients"]["parameters"]
    assert params["attribution"] == "IntegratedGradients" and params["kind"] == "captum"
    assert params["attribute_args"] == {"n_steps": 16, "baselines": 0.0}
    assert man["methods"]["normlime"]["parameters"]["aggregation"] == "NormLIME eq. (9)"
    sizes = {(bundle.root / e["png"]).stat().st_size for e in man["maps"]}
    assert len(sizes) == 1  # no byte-size cue between methods or classes


def test_every_method_points_at_the_pixels_the_model_needs(project, bundle):
    """Deletion: zeroing a class map's top 8 of 64 pixels costs the model far more of the
    class's probability than zeroing 8 random pixels (measured: NormLIME 0.43 and IG 0.88
    against 0.08 at random; Saliency 0.43 against 0.04).  NormLIME's local models draw
    their neighbours from the data (the template's neighbourhood = "data"): they find
    the pixels that tell a class from nearby images of other classes, which is not what
    deletion asks; with Gaussian noise, whose samples are pixel deletions and additions,
    the same test measured 0.83."""
    import torch

    from explainers.data import as_float
    from explainers.datasets import load_dataset
    from explainers.project import load_project
    from explainers.user_model import load_classifier

    p = load_project(project)
    p.importable()
    data = load_dataset(p.dataset, p.root, p.class_names)
    model, _ = load_classifier(p.model, p.root, n_classes=10, input_shape=(1, 8, 8))
    x, y = as_float(data.test_images), data.test_labels
    rng = np.random.default_rng(0)
    for method, floor in (("normlime", 0.3), ("integrated_gradients", 0.5), ("saliency", 0.2)):
        top_drop, random_drop = [], []
        for c in range(10):
            xs = x[y == c].reshape(-1, 64)
            with torch.no_grad():
                p0 = model(xs.reshape(-1, 1, 8, 8))[:, c]
                for idx, out in (
                    (np.argsort(-bundle.maps[method][c].ravel())[:8], top_drop),
                    (rng.choice(64, 8, replace=False), random_drop),
                ):
                    masked = xs.clone()
                    masked[:, idx] = 0
                    out.append(float((p0 - model(masked.reshape(-1, 1, 8, 8))[:, c]).mean()))
        assert np.mean(top_drop) > floor, (method, np.round(top_drop, 2))
        assert np.mean(top_drop) > 4 * max(np.mean(random_drop), 0.01), method


def test_a_rerun_reproduces_the_maps_from_the_seed_and_the_cache(project, bundle, tmp_path):
    out = run_cli("precompute", "--project", project, "--quiet", "--out", tmp_path / "again")
    assert "3 methods x 10 classes" in out
    again = read_bundle(tmp_path / "again")
    for m in METHODS:
        np.testing.assert_allclose(again.maps[m], bundle.maps[m], rtol=1e-5, atol=1e-7)
    local = again.manifest["local_explanations"]
    assert local["cache_hits"] == local["count"] == 200


def _answer_all(srv, walker, prefer: str) -> None:
    """Answer every item: checks correctly, real questions for ``prefer`` when it is shown."""
    for item in participant_items(srv, walker.token):
        slots = item["slots"]
        if item["is_check"]:
            choice = next(i for i, s in enumerate(slots, 1) if s[2] == "correct")
        else:
            choice = next(i for i, s in enumerate(slots, 1) if s[0] == prefer)
        assert walker.answer(choice).status_code == 200


def test_the_survey_export_and_analysis_run_on_the_projects_bundle(
    project, bundle, sqlite_url, tmp_path
):
    srv = make_server(sqlite_url, project / "maps")
    try:
        design = srv.app.extensions["normlime_maps"].design
        assert (design.n_options, design.n_items) == (3, 13)
        for k in range(9):
            w = Walker(srv).begin(worker=f"W{k}", assignment=f"A{k}")
            _answer_all(srv, w, METHODS[0] if k < 6 else METHODS[k % 3])
            assert "All 13 answers are saved" in w.page
    finally:
        srv.engine.dispose()
    votes = tmp_path / "votes.csv"
    run_cli("export-votes", "--db", sqlite_url, "--out", votes, "--include-debug")
    rows = list(csv.DictReader(votes.open()))
    assert len(rows) == 9 * 13
    assert {r["chosen_method"] for r in rows if r["is_attention_check"] == "false"} <= set(METHODS)
    run_cli("analyze", "--votes", votes, "--out", tmp_path / "analysis", "--project", project)
    details = json.loads((tmp_path / "analysis" / "details.json").read_text())
    # the project's bundle stated them; nothing was guessed from the votes
    assert details["settings"]["design_source"] == "given"
    assert details["settings"]["methods_source"] != "inferred"
    assert details["settings"]["methods"] == METHODS
    assert (details["settings"]["real_questions"], details["settings"]["attention_checks"]) == (
        10, 3,
    )  # fmt: skip
    props = details["proportions"]
    assert set(props) == set(METHODS)
    # six of nine participants always chose NormLIME, the other three one method each
    assert props["normlime"]["mean"] == pytest.approx(7 / 9)


def test_inspect_maps_reports_on_the_projects_bundle(project, tmp_path):
    out = run_cli("inspect-maps", "--project", project, "--out", tmp_path)
    report = json.loads((tmp_path / "inspect.json").read_text())
    assert set(report["methods"]) == set(METHODS)
    for m in METHODS:
        entry = report["methods"][m]
        assert len(entry["png_bytes"]) == len(entry["ink_mass_share"]) == 10
    assert report["png_bytes_equal"] and report["criteria"]["border_pixels"] == 1
    assert "integrated_gradients" in out and (tmp_path / "montage.png").is_file()
