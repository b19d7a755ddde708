"""KAR: masking, the retraining job on synthetic data with a known answer, results tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.benchmarks.jobs import Job, execute
from analysis.benchmarks.kar import (
    PIXEL_MEAN,
    KarSettings,
    kar_context,
    kar_job,
    kar_jobs,
    keep_for,
    keep_mask,
    n_removed,
    results_frame,
    summarise,
    write_outputs,
)

# The synthetic task: the label is written into 60 known pixels (rows 2-4, columns 4-23;
# class c lights columns 4+2c and 5+2c); every other pixel is label-free noise.
SIGNAL = np.zeros((28, 28), dtype=bool)
SIGNAL[2:5, 4:24] = True


def make_synthetic(n_train: int, n_test: int, seed: int = 0):
    from explainers.data import MnistData

    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, n)
        img = (rng.random((n, 28, 28)) * 100).astype(np.uint8)
        img[:, SIGNAL] = 0
        for c in range(10):
            img[np.ix_(y == c, range(2, 5), range(4 + 2 * c, 6 + 2 * c))] = 255
        return img, y.astype(np.int64)

    tr, ytr = make(n_train)
    te, yte = make(n_test)
    return MnistData("synthetic", "synthetic label-in-60-pixels task", tr, ytr, te, yte)


def synthetic_context(settings, data, rankings, model=None):
    import torch

    from explainers.model import MnistCNN

    if model is None:
        torch.manual_seed(0)
        model = MnistCNN().eval()
    pred = {"train": data.train_labels, "test": data.test_labels}
    return kar_context(settings, data, model, pred, PIXEL_MEAN, rankings, "synthetic")


def run_grid(settings, ctx):
    # one torch thread, as the presets run jobs (restored afterwards by execute)
    return {j.id: execute(kar_job, ctx, j, threads=1) for j in kar_jobs(settings)}


# --------------------------------------------------------------------------- masking


def test_n_removed_is_floor_of_fraction_times_features():
    assert n_removed(784, 0.1) == 78
    assert n_removed(784, 0.9) == 705
    assert n_removed(100, 0.29) == 29  # 0.29 * 100 = 28.999999999999996 in binary
    assert n_removed(12544, 0.3) == 3763


def test_keep_mask_removes_the_least_important_and_breaks_ties_by_index():
    scores = np.array([0.5, 0.1, 0.1, 0.9, 0.1, 0.3])
    keep = keep_mask(scores, 0.5)  # remove floor(3.0) = 3 features
    # the three 0.1 ties are the least important; all three go
    assert keep.tolist() == [True, False, False, True, False, True]
    keep = keep_mask(scores, 0.34)  # remove 2: among the tied 0.1s the lower indices first
    assert keep.tolist() == [True, False, False, True, True, True]
    # the x axis is the fraction REMOVED: 0.9 keeps only the top 10%
    s = np.arange(100.0)
    assert keep_mask(s, 0.9).sum() == 10
    assert keep_mask(s, 0.9)[90:].all()


def test_class_ranking_is_keyed_to_the_predicted_class_not_the_label():
    scores = np.zeros((10, 6))
    scores[3] = [6, 5, 4, 3, 2, 1]
    scores[7] = [1, 2, 3, 4, 5, 6]
    payload = {"kind": "class", "scores": scores, "per_image": {}}
    keep = keep_for(payload, "test", np.array([3, 7]), 0.5)
    assert keep.tolist() == [[True] * 3 + [False] * 3, [False] * 3 + [True] * 3]
    glob = keep_for({"kind": "global", "scores": scores[3], "per_image": {}}, "test", None, 0.5)
    assert glob.shape == (1, 6)


def test_per_image_ranking_ranks_each_image_by_magnitude():
    maps = np.array([[0.1, -5.0, 0.2, 0.0], [3.0, 0.0, -0.1, 1.0]], dtype=np.float32)
    payload = {"kind": "per-image", "scores": None, "per_image": {"train": maps}}
    keep = keep_for(payload, "train", np.array([0, 1]), 0.5)
    assert keep.tolist() == [[False, True, True, False], [True, False, False, True]]


# --------------------------------------------------------------------------- retraining


def test_baseline_job_reproduces_train_model_exactly(embedded_data):
    """The KAR loop is explainers.train's loop: same seed, same weights, same accuracy."""
    from analysis.benchmarks.kar import subset_data
    from explainers.train import TrainConfig, train_model

    data = subset_data(embedded_data, 400, 300, seed=0)
    settings = KarSettings(methods=("random",), fractions=(0.5,), runs=1, epochs=1)
    ranking = {"kind": "global", "scores": np.zeros(784), "per_image": {}}
    ctx = synthetic_context(settings, data, {"random": ranking})
    params = {"kind": "baseline", "method": "baseline", "fraction": 0.0, "run": 0}
    job = Job("baseline|0|0", 1234, params)
    row = execute(kar_job, ctx, job, threads=1)
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the same float reductions as the job
    try:
        ref = train_model(data, TrainConfig(epochs=1, seed=1234))
    finally:
        torch.set_num_threads(previous)
    assert row["accuracy"] == pytest.approx(ref.test_accuracy, abs=0)
    assert row["final_loss"] == pytest.approx(ref.train_loss[-1], rel=1e-6)


def test_true_ranking_keeps_accuracy_where_random_ranking_loses_it():
    data = make_synthetic(1500, 500)
    truth = SIGNAL.reshape(-1).astype(float)
    rng = np.random.default_rng(1)
    rankings = {
        "truth": {"kind": "global", "scores": truth, "per_image": {}},
        "random": {"kind": "global", "scores": rng.random(784), "per_image": {}},
    }
    settings = KarSettings(methods=("truth", "random"), fractions=(0.9,), runs=1, epochs=2)
    ctx = synthetic_context(settings, data, rankings)
    rows = run_grid(settings, ctx)
    base = rows["baseline|0|0"]["accuracy"]
    truth_acc = rows["kar|truth|0.9|0"]["accuracy"]
    random_acc = rows["kar|random|0.9|0"]["accuracy"]
    # 90% removed keeps 78 pixels: all 60 label pixels survive the true ranking ...
    assert base > 0.9
    assert truth_acc >= base - 0.05
    # ... while a random ranking keeps ~10% of them
    assert random_acc < truth_acc - 0.2
    assert rows["kar|truth|0.9|0"]["n_removed"] == 705


def test_conv_features_true_ranking_keeps_and_inverted_ranking_loses(tmp_path):
    """Conv KAR: the frozen extractor's features; removing the label region kills accuracy."""
    import torch

    from explainers.data import as_float
    from explainers.train import TrainConfig, train_model

    data = make_synthetic(1500, 400)
    model = train_model(data, TrainConfig(epochs=2, seed=0)).model
    # conv-2 features are 14x14 (after one pooling); feature (r, c) sees input rows
    # 2r-2 .. 2r+3 and columns 2c-2 .. 2c+3, so the label pixels reach rows 0-3, cols 1-12
    region = np.zeros((64, 14, 14))
    region[:, 0:4, 1:13] = 1.0  # 3,072 features
    rankings = {
        "truth": {"kind": "global", "scores": region.reshape(-1), "per_image": {}},
        "inverted": {"kind": "global", "scores": 1.0 - region.reshape(-1), "per_image": {}},
    }
    settings = KarSettings(
        features="conv", methods=("truth", "inverted"), fractions=(0.7,), runs=1, epochs=2
    )
    ctx = synthetic_context(settings, data, rankings, model=model)
    ctx["replacement"] = np.zeros(12544, dtype=np.float32)
    before = {k: v.copy() for k, v in ctx["model_state"].items()}
    rows = run_grid(settings, ctx)
    for k, v in before.items():  # the context (the explained model) is not modified
        np.testing.assert_array_equal(ctx["model_state"][k], v)
    base = rows["baseline|0|0"]["accuracy"]
    assert base > 0.9
    # 70% removed keeps 3,764 features: the whole region, or (inverted) none of it
    assert rows["kar|truth|0.7|0"]["accuracy"] >= base - 0.05
    assert rows["kar|inverted|0.7|0"]["accuracy"] < 0.3
    with torch.inference_mode():
        assert model(as_float(data.test_images[:5])).shape == (5, 10)


def test_class_ranking_mask_only_control_detects_label_leakage():
    """A class-keyed mask encodes the class: a net trained on the mask alone beats chance."""
    data = make_synthetic(1200, 400)
    scores = np.random.default_rng(0).random((10, 784))
    settings = KarSettings(methods=("keyed",), fractions=(0.5,), runs=1, epochs=2, ranking="class")
    assert settings.controls
    ctx = synthetic_context(
        settings, data, {"keyed": {"kind": "class", "scores": scores, "per_image": {}}}
    )
    job = next(j for j in kar_jobs(settings) if j.params["kind"] == "mask-control")
    acc = execute(kar_job, ctx, job, threads=1)["accuracy"]
    assert acc > 0.8  # chance is 0.1: the mask alone reveals the (predicted) class


def test_grid_shares_run_seeds_across_methods_and_records_them():
    settings = KarSettings(methods=("a", "b"), fractions=(0.3, 0.6), runs=2)
    jobs = kar_jobs(settings)
    assert len(jobs) == 2 + 2 * 2 * 2
    seeds = {(j.params["method"], j.params["fraction"], j.params["run"]): j.seed for j in jobs}
    assert seeds[("a", 0.3, 0)] == seeds[("b", 0.6, 0)] == seeds[("baseline", 0.0, 0)]
    assert seeds[("a", 0.3, 0)] != seeds[("a", 0.3, 1)]
    with pytest.raises(ValueError, match="unknown method"):
        KarSettings(methods=("a",)).validate()
    with pytest.raises(ValueError, match="strictly between"):
        KarSettings(fractions=(0.0, 0.5)).validate()


def test_error_gain_table_markdown_and_plot(tmp_path):
    rows = []
    for run, acc in enumerate([0.99, 0.98]):
        rows.append(
            {
                "job_id": f"b{run}",
                "kind": "baseline",
                "method": "baseline",
                "fraction": 0.0,
                "run": run,
                "seed": run,
                "accuracy": acc,
            }
        )
    for run, acc in enumerate([0.97, 0.95]):
        rows.append(
            {
                "job_id": f"k{run}",
                "kind": "kar",
                "method": "normlime",
                "fraction": 0.5,
                "run": run,
                "seed": run,
                "accuracy": acc,
            }
        )
    settings = KarSettings(methods=("normlime",), fractions=(0.5,), runs=2)
    frame = results_frame(rows, settings)
    # baseline error = mean(1%, 2%) = 1.5%; errors 3% and 5% -> gains 1.5 and 3.5 pp
    gains = frame[frame["kind"] == "kar"]["error_gain"].tolist()
    assert gains == pytest.approx([1.5, 3.5])
    summary = summarise(frame)
    row = summary[summary["method"] == "normlime"].iloc[0]
    assert row["error_gain_mean"] == pytest.approx(2.5)
    assert row["error_gain_sd"] == pytest.approx(np.std([1.5, 3.5], ddof=1))
    meta = {
        "settings": json.loads(json.dumps(settings.__dict__, default=str)),
        "explained_model": {"test_accuracy": 0.99},
        "replacement": {"rule": "mean", "value": PIXEL_MEAN},
        "data": {"description": "test"},
    }
    write_outputs(frame, summary, meta, tmp_path)
    md = (tmp_path / "kar.md").read_text()
    assert "| normlime | +2.50 ± 1.41 |" in md
    assert "0.1307" in md
    assert (tmp_path / "kar.png").stat().st_size > 1000
    csv = (tmp_path / "kar.csv").read_text().splitlines()[0].split(",")
    assert csv[:7] == ["method", "features", "fraction", "run", "seed", "accuracy", "error_gain"]
