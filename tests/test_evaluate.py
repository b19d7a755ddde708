"""``normlime evaluate`` on a synthetic project whose class is decided by known pixels.

Each 12x12 image has a bright 3x3 block in one of four places; the block's place is the
class.  The model is fixed (no training): hidden unit k sums block k, the output layer
copies the hidden units, so the known pixels are exactly what the model uses.  Methods:
an oracle that scores the target's block pixels 1 and the rest 0, an edge detector that
ignores the model, and Captum's Saliency.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.evaluate import metrics
from analysis.evaluate.imputation import noisy_linear_imputation
from tests.project_fixtures import run_cli, run_cli_error
from tests.synthetic_project import CORNERS, SIDE
from tests.synthetic_project import write_project as _project

BLOCK = 3


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = _project(tmp_path_factory.mktemp("blocks") / "project")
    run_cli("precompute", "--project", root)
    out = root.parent / "eval"
    run_cli("evaluate", "--project", root, "--out", out, "--images", "80", "--bootstrap", "300",
            "--subsets", "50", "--no-progress")  # fmt: skip
    return root, out, json.loads((out / "evaluation.json").read_text())


def _row(result, level, method, metric):
    return next(r for r in result["rows"]
                if (r["level"], r["method"], r["metric"]) == (level, method, metric))  # fmt: skip


METRIC_NAMES = ("deletion_auc", "insertion_auc", "road_morf", "road_lerf", "road_gap",
                "faithfulness_correlation")  # fmt: skip


@pytest.mark.parametrize("level", ["per-image", "class-level"])
def test_a_method_ranking_the_deciding_pixels_first_beats_random_on_every_metric(evaluated, level):
    _root, _out, result = evaluated
    assert result["accuracy_on_sample"] == 1.0
    for metric in METRIC_NAMES:
        oracle = _row(result, level, "oracle", metric)
        rand = _row(result, level, "random", metric)
        if oracle["better"] == "lower":
            assert oracle["ci_high"] < rand["ci_low"], (metric, oracle, rand)
        else:
            assert oracle["ci_low"] > rand["ci_high"], (metric, oracle, rand)
    # the rank table: the oracle shares the top two with Saliency (whose gradient on this
    # model is the target's block too), in (nearly) every resample
    for metric in METRIC_NAMES:
        ranks = {r["method"]: r for r in result["ranks"]
                 if r["level"] == level and r["metric"] == metric}  # fmt: skip
        oracle = ranks["oracle"]
        assert oracle["rank"] <= 2 and sum(oracle["shares"][:2]) > 0.95, (metric, oracle)
        assert ranks["random"]["rank"] > oracle["rank"]


@pytest.mark.parametrize("level", ["per-image", "class-level"])
def test_the_random_ranking_sits_at_chance(evaluated, level):
    _root, _out, result = evaluated
    # no relation between its scores and the output, no difference between the two orders:
    # within 4 standard errors of 0 (one seed; the coverage test below uses many)
    for metric in ("faithfulness_correlation", "road_gap"):
        row = _row(result, level, "random", metric)
        se = (row["ci_high"] - row["ci_low"]) / 3.92
        assert abs(row["value"]) < 4 * se, row


def test_random_rankings_cover_zero_at_about_the_nominal_rate(evaluated):
    """20 seeds of the random baseline: the 95% intervals of faithfulness correlation and
    of the ROAD gap hold 0 in most of them (measured: 19-20 of 20)."""
    import importlib
    import sys

    root, _out, _result = evaluated
    sys.path.insert(0, str(root))
    try:
        synth = importlib.import_module("synth")
    finally:
        sys.path.remove(str(root))
    from explainers.user_model import Classifier

    model = Classifier(synth.build(), mean=[0.0], std=[1.0]).eval()
    d = synth.data()
    x = torch.as_tensor(d["test_images"][:60, None])
    labels = d["test_labels"][:60]
    covered = {"faith": 0, "gap": 0}
    for seed in range(20):
        scores = np.random.default_rng(seed).random((60, SIDE * SIDE))
        faith = metrics.faithfulness_correlation(
            model, x, scores, None, labels, n_subsets=40, subset_size=14, substrate=[0.0],
            rng=seed,
        )  # fmt: skip
        road = {o: metrics.road_curves(model, x, scores, None, labels, percentages=[0.1, 0.3, 0.5],
                                       order=o, noise=0.01, rng=[seed, i])["correct"].mean(1)
                for i, o in enumerate(("morf", "lerf"))}  # fmt: skip
        for name, values in (("faith", faith), ("gap", road["lerf"] - road["morf"])):
            half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
            covered[name] += abs(values.mean()) <= half
    assert covered["faith"] >= 16 and covered["gap"] >= 16, covered


def test_randomisation_falls_for_the_model_and_not_for_an_edge_detector(evaluated):
    _root, _out, result = evaluated
    assert result["layers"] == ["net.1", "net.3"]
    edges = _row(result, "per-image", "edges", "randomisation_spearman")
    saliency = _row(result, "per-image", "saliency", "randomisation_spearman")
    assert edges["value"] == pytest.approx(1.0) and edges["ci_low"] == pytest.approx(1.0)
    assert abs(saliency["value"]) < 0.3 and saliency["ci_high"] < 0.5
    # class maps are aggregates: the check is per-image only
    assert not any(r["metric"] == "randomisation_spearman" and r["level"] == "class-level"
                   for r in result["rows"])  # fmt: skip


def test_each_row_says_its_level_and_the_outputs_are_complete(evaluated):
    _root, out, result = evaluated
    levels = {(r["level"], r["method"]) for r in result["rows"]}
    assert ("per-image", "oracle") in levels and ("class-level", "oracle") in levels
    assert ("per-image", "random") in levels and ("class-level", "random") in levels
    for name in ("evaluation.csv", "ranks.csv", "curves.csv", "evaluation.md", "jobs.jsonl"):
        assert (out / name).stat().st_size > 0
    assert "per-image" in (out / "evaluation.md").read_text()


def test_seeds_reproduce_every_number_and_a_rerun_resumes(evaluated, tmp_path):
    root, out, result = evaluated
    again = tmp_path / "again"
    args = ("evaluate", "--project", root, "--images", "80", "--bootstrap", "300",
            "--subsets", "50", "--no-progress")  # fmt: skip
    run_cli(*args, "--out", again)
    assert (again / "evaluation.csv").read_text() == (out / "evaluation.csv").read_text()
    # resuming: every job is already in jobs.jsonl, nothing is recomputed
    before = (out / "jobs.jsonl").read_text()
    run_cli(*args, "--out", out)
    assert (out / "jobs.jsonl").read_text() == before
    other = tmp_path / "other"
    run_cli(*args, "--out", other, "--seed", "4")
    assert (other / "evaluation.csv").read_text() != (out / "evaluation.csv").read_text()
    # a changed setting is refused in the same folder rather than mixed in
    line = run_cli_error(*args, "--out", out, "--steps", "8")
    assert "different configuration" in line


def test_bad_input_gets_one_line_and_exit_code_2(evaluated, tmp_path):
    root, _out, _result = evaluated
    base = ("evaluate", "--project", root, "--out", tmp_path / "x", "--no-progress")
    assert "more than the 200 test images" in run_cli_error(*base, "--images", "500")
    assert "is not a method" in run_cli_error(*base, "--methods", "gradcam")
    assert "--levels" in run_cli_error(*base, "--levels", "pixels")
    assert "--percentages" in run_cli_error(*base, "--percentages", "0.5,1.5")
    fixed = _project(tmp_path / "fixed", build="build_fixed")
    line = run_cli_error("evaluate", "--project", fixed, "--out", tmp_path / "y",
                         "--levels", "per-image")  # fmt: skip
    assert "no layer with parameters" in line
    no_bundle = _project(tmp_path / "nobundle")
    assert "precompute" in run_cli_error("evaluate", "--project", no_bundle, "--out",
                                         tmp_path / "z")  # fmt: skip
    assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()


def test_the_mnist_project_reads_a_relative_data_path_from_the_working_directory(
    full_mnist_path, tmp_path, monkeypatch
):
    """README's `normlime evaluate --project mnist --data ../shared/data/mnist`: the path
    is the caller's, not relative to the built-in project's folder."""
    (tmp_path / "data").symlink_to(full_mnist_path, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "ev"
    run_cli("evaluate", "--project", "mnist", "--data", "data", "--out", out,
            "--images", "4", "--levels", "per-image", "--methods", "smoothgrad",
            "--bootstrap", "100", "--no-progress")  # fmt: skip
    dataset = json.loads((out / "evaluation.json").read_text())["dataset"]
    assert dataset["path"] == str(full_mnist_path.resolve())  # the link, resolved
    assert dataset["test_images"] == 10000
    line = run_cli_error("evaluate", "--project", "mnist", "--data", "no-such-dir", "--out",
                         tmp_path / "none", "--no-progress")  # fmt: skip
    assert str(tmp_path.resolve() / "no-such-dir") in line
    assert not (tmp_path / "none").exists()


def test_model_replaces_the_projects_and_must_have_made_the_class_maps(tmp_path):
    """`--model` (what `normlime train` wrote) is the model evaluated, in this process and
    in workers; the shipped bundle's class maps, made by the shipped model, are refused for
    it rather than scored on a model that did not make them."""
    from explainers.model import MnistCNN, file_checksum, save

    torch.manual_seed(3)
    other = save(MnistCNN().eval(), tmp_path / "other.pt")
    base = ("evaluate", "--project", "mnist", "--data", "embedded", "--model", other,
            "--images", "6", "--methods", "smoothgrad", "--bootstrap", "100", "--no-progress")
    line = run_cli_error(*base, "--out", tmp_path / "refused")
    assert "was made from model" in line and "--levels per-image" in line
    assert not (tmp_path / "refused").exists()
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}"
        run_cli(*base, "--levels", "per-image", "--jobs", jobs, "--out", out)
        result = json.loads((out / "evaluation.json").read_text())
        assert result["model_sha256"] == file_checksum(other)
        outs.append(pd.read_csv(out / "evaluation.csv"))
    # the workers loaded --model too, not the project's (worker processes run torch with
    # other thread counts: measured differences up to 5e-8)
    pd.testing.assert_frame_equal(outs[0], outs[1], check_exact=False, atol=1e-6, rtol=0)
    assert "no such file" in run_cli_error(*base, "--model", tmp_path / "none.pt", "--out",
                                           tmp_path / "x")  # fmt: skip


def test_road_imputation_does_not_leak_the_label_through_the_mask():
    """The mask's place encodes the label; a constant fill lets a linear probe read it,
    noisy linear imputation of a uniform background does not."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    rng = np.random.default_rng(0)
    n = 400
    labels = rng.integers(0, 4, n)
    images = rng.uniform(0.4, 0.6, size=(n, 1, SIDE, SIDE))
    removed = np.zeros((n, SIDE, SIDE), dtype=bool)
    for i, c in enumerate(labels):
        r, k = CORNERS[c]
        removed[i, r : r + BLOCK, k : k + BLOCK] = True
    constant = np.where(removed[:, None], 0.0, images)
    imputed = noisy_linear_imputation(images, removed, noise=0.01, rng=1)

    def probe(x):
        return cross_val_score(LogisticRegression(max_iter=2000), x.reshape(n, -1), labels,
                               cv=4).mean()  # fmt: skip

    assert probe(constant) > 0.95  # the control: a constant fill leaks the label
    assert probe(imputed) < 0.40  # chance is 0.25
    # the imputed values are interpolations of the neighbours, never the removed pixels
    assert np.all(np.abs(imputed[removed[:, None]] - 0.5) < 0.2)


@pytest.mark.parametrize("banded", [True, False], ids=["banded-cholesky", "sparse-lu"])
def test_imputation_solves_each_removed_pixel_as_its_neighbours_weighted_mean(banded):
    rng = np.random.default_rng(2)
    x = rng.random((3, 2, 6, 7))
    removed = rng.random((3, 6, 7)) < 0.5
    out = noisy_linear_imputation(x, removed, noise=0.0, banded=banded)
    weights = {(1, 1): 1 / 12, (0, 1): 1 / 6, (-1, 1): 1 / 12, (1, -1): 1 / 12,
               (0, -1): 1 / 6, (-1, -1): 1 / 12, (1, 0): 1 / 6, (-1, 0): 1 / 6}  # fmt: skip
    for i, r, c in zip(*np.nonzero(removed), strict=True):
        num, den = 0.0, 0.0
        for (dr, dc), w in weights.items():
            if 0 <= r + dr < 6 and 0 <= c + dc < 7:
                num = num + w * out[i, :, r + dr, c + dc]
                den += w
        np.testing.assert_allclose(out[i, :, r, c], num / den, atol=1e-10)
    np.testing.assert_array_equal(out[~removed[:, None].repeat(2, 1)],
                                  x[~removed[:, None].repeat(2, 1)])  # fmt: skip
    with pytest.raises(ValueError, match="kept pixel"):
        noisy_linear_imputation(x, np.ones((3, 6, 7), dtype=bool), banded=banded)


@pytest.mark.parametrize("shape", [(4, 3, 28, 28), (2, 1, 9, 150), (3, 2, 40, 5), (2, 1, 1, 9)])
def test_both_imputation_solvers_agree_and_the_noise_is_the_seeds(shape):
    """The banded Cholesky (images up to BANDED_MAX_WIDTH wide) and the sparse LU (wider
    ones) solve the same system: measured max difference 2e-15."""
    n, c, h, w = shape
    rng = np.random.default_rng(5)
    x = rng.random(shape)
    for share in (0.05, 0.5, 0.95):
        removed = rng.random((n, h, w)) < share
        removed[:, 0, 0] = False
        banded = noisy_linear_imputation(x, removed, noise=0.01, rng=9, banded=True)
        sparse = noisy_linear_imputation(x, removed, noise=0.01, rng=9, banded=False)
        np.testing.assert_allclose(banded, sparse, rtol=0, atol=1e-12)
        default = noisy_linear_imputation(x, removed, noise=0.01, rng=9)
        np.testing.assert_array_equal(default, banded if w <= 128 else sparse)
        kept = ~removed[:, None].repeat(c, 1)
        np.testing.assert_array_equal(banded[kept], x[kept])


def test_metrics_act_on_the_features_of_a_grid():
    from explainers.features import grid_features

    features = grid_features(4, 4, 2)
    maps = np.arange(16.0).reshape(1, 4, 4)
    scores = metrics.feature_scores(maps, features)
    np.testing.assert_array_equal(scores, [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13,
                                            10 + 11 + 14 + 15]])  # fmt: skip
    # removing the most relevant cell removes its four pixels, nothing else
    order = metrics.ranking(scores)
    assert order.tolist() == [[3, 2, 1, 0]]
    pixels = metrics.feature_masks(np.array([[False, False, False, True]]), features, (4, 4))
    assert pixels.sum() == 4 and pixels[0, 2:, 2:].all()


def test_faithfulness_correlation_is_reproducible_from_its_seed():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3), torch.nn.Softmax(1))
    x = torch.rand(5, 1, 4, 4)
    scores = np.random.default_rng(0).random((5, 16))
    kw = {"n_subsets": 20, "subset_size": 4, "substrate": [0.0]}
    a = metrics.faithfulness_correlation(net, x, scores, None, [0] * 5, rng=11, **kw)
    b = metrics.faithfulness_correlation(net, x, scores, None, [0] * 5, rng=11, **kw)
    c = metrics.faithfulness_correlation(net, x, scores, None, [0] * 5, rng=12, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("prefs,sign", [((0.6, 0.1, 0.3), 1), ((0.1, 0.6, 0.3), -1)])
def test_analyze_puts_what_people_chose_next_to_the_metric_orders(evaluated, tmp_path, prefs,
                                                                  sign):  # fmt: skip
    """Simulated people who prefer the oracle agree with the metrics that rank it first;
    people who prefer the edge detector disagree with them."""
    from analysis.study.simulate import simulate_export

    _root, out, result = evaluated
    votes = tmp_path / "votes.csv"
    simulate_export(300, methods=("oracle", "edges", "saliency"), preferences=prefs,
                    classes=4, real_questions=8, attention_checks=2,
                    random_state=5).to_csv(votes, index=False)  # fmt: skip
    report = tmp_path / "analysis"
    run_cli("analyze", "--votes", votes, "--out", report, "--evaluation", out,
            "--bootstrap", "200", "--real-questions", "8", "--attention-checks", "2")  # fmt: skip
    summary = json.loads((report / "summary.json").read_text())
    rows = {r["metric"]: r for r in summary["human_vs_metrics"]["rows"]}
    assert set(rows) == set(METRIC_NAMES)
    faith = rows["faithfulness_correlation"]
    lo, hi = faith["ci"]
    assert faith["rho"] == sign * 1.0
    assert (lo > 0) if sign > 0 else (hi < 0), faith
    assert "What people chose and what the metrics say" in (report / "report.md").read_text()
    # an evaluation without class-level rows cannot be compared
    per_image = tmp_path / "per-image"
    per_image.mkdir()
    blob = json.loads((out / "evaluation.json").read_text())
    blob["rows"] = [r for r in blob["rows"] if r["level"] == "per-image"]
    (per_image / "evaluation.json").write_text(json.dumps(blob))
    (per_image / "resamples.npz").write_bytes((out / "resamples.npz").read_bytes())
    line = run_cli_error("analyze", "--votes", votes, "--out", tmp_path / "x", "--evaluation",
                         per_image, "--real-questions", "8", "--attention-checks", "2")  # fmt: skip
    assert "no class-level rows" in line


@pytest.mark.timeout(300)
def test_worker_processes_give_the_same_numbers(evaluated, tmp_path):
    """--jobs 2 (joblib worker processes, which load the project's model themselves)."""
    root, out, _result = evaluated
    par = tmp_path / "par"
    run_cli("evaluate", "--project", root, "--images", "80", "--bootstrap", "300",
            "--subsets", "50", "--no-progress", "--jobs", "2", "--out", par)  # fmt: skip
    one = json.loads((out / "evaluation.json").read_text())["rows"]
    two = json.loads((par / "evaluation.json").read_text())["rows"]
    assert [(r["level"], r["method"], r["metric"]) for r in one] == [
        (r["level"], r["method"], r["metric"]) for r in two
    ]
    # float32 forward passes in other processes: measured max difference 0 on this CPU
    np.testing.assert_allclose([r["value"] for r in one], [r["value"] for r in two], atol=1e-6)


def test_an_aggregated_method_has_no_per_image_rows_to_ask_for(tmp_path):
    root = _project(tmp_path / "agg")
    with (root / "study.toml").open("a") as fh:
        fh.write('\n[[methods]]\nname = "normlime"\nkind = "normlime"\n')
    line = run_cli_error("evaluate", "--project", root, "--out", tmp_path / "o", "--levels",
                         "per-image", "--methods", "normlime,oracle")  # fmt: skip
    assert "aggregated method has no per-image maps" in line
    assert not (tmp_path / "o").exists()
