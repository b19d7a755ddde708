"""`normlime kar` and `normlime occlusion` end to end with the smoke preset; bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from normlime_cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def kar_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("kar-smoke")
    result = invoke("kar", "--preset", "smoke", "--no-progress", "--out", out)
    assert result.exit_code == 0, result.output
    return out, result


def test_kar_smoke_preset_end_to_end(kar_out):
    out, result = kar_out
    frame = pd.read_csv(out / "kar.csv")
    assert list(frame.columns[:7]) == [
        "method",
        "features",
        "fraction",
        "run",
        "seed",
        "accuracy",
        "error_gain",
    ]
    kar = frame[frame["kind"] == "kar"]
    # smoke: normlime, lime, smoothgrad, random x fractions 0.5, 0.9 x 1 run, + 1 baseline
    assert len(frame) == 9 and len(kar) == 8
    assert set(kar["method"]) == {"normlime", "lime", "smoothgrad", "random"}
    assert sorted(set(kar["fraction"])) == [0.5, 0.9]
    base = frame[frame["kind"] == "baseline"].iloc[0]
    assert base["error_gain"] == pytest.approx(0.0)
    expected = ((1 - kar["accuracy"]) - (1 - base["accuracy"])) * 100
    assert kar["error_gain"].tolist() == pytest.approx(expected.tolist(), abs=1e-3)
    meta = json.loads((out / "kar.json").read_text())
    assert meta["replacement"] == {"rule": "mean", "value": 0.1307}
    assert meta["rankings"]["normlime"]["aggregation"].startswith("NormLIME S(c_i)")
    assert meta["rankings"]["lime"]["explained_images"] == 20  # 2 per predicted class
    assert (out / "kar.png").stat().st_size > 1000
    assert "| normlime |" in (out / "kar.md").read_text()
    assert "| normlime |" in result.output and "wall time" in result.output


def test_kar_rerun_resumes_from_the_finished_jobs(kar_out):
    out, _ = kar_out
    before_jobs = (out / "kar-jobs.jsonl").read_text()
    before_csv = (out / "kar.csv").read_text()
    result = invoke("kar", "--preset", "smoke", "--no-progress", "--out", out)
    assert result.exit_code == 0, result.output
    assert "training the explained model" not in result.output  # cached in --out
    assert (out / "kar-jobs.jsonl").read_text() == before_jobs  # nothing was redone
    assert (out / "kar.csv").read_text() == before_csv


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fractions", "0.5,1.5"], "strictly between 0 and 1"),
        (["--fractions", "half"], "numbers separated by commas"),
        (["--methods", "normlime,gradcam"], "unknown method(s) gradcam"),
        (["--methods", "lime,lime"], "names a method twice"),
        (["--scheduler", "localhost:8786"], "tcp://host:8786"),
        (["--model", "/nonexistent/model.pt"], "does not exist"),
        (["--data", "/nonexistent/mnist"], "does not exist"),
    ],
)
def test_kar_bad_input_exits_2_with_one_line(tmp_path, args, message):
    result = invoke("kar", "--preset", "smoke", "--out", tmp_path / "o", *args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip() and "data:" not in ln]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], lines
    assert not (tmp_path / "o").exists()


def test_kar_refuses_to_mix_a_different_configuration_into_an_output(kar_out, tmp_path):
    out, _ = kar_out
    before = (out / "kar-jobs.jsonl").read_text()
    result = invoke("kar", "--preset", "smoke", "--epochs", "3", "--out", out)
    assert result.exit_code == 2
    assert "different configuration (differs in: epochs)" in result.output
    assert (out / "kar-jobs.jsonl").read_text() == before
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = invoke("kar", "--preset", "smoke", "--out", not_a_dir)
    assert result.exit_code == 2


def test_occlusion_smoke_preset_end_to_end(tmp_path):
    out = tmp_path / "occ"
    result = invoke("occlusion", "--preset", "smoke", "--no-progress", "--out", out)
    assert result.exit_code == 0, result.output
    curves = pd.read_csv(out / "occlusion.csv")
    aucs = pd.read_csv(out / "occlusion-auc.csv")
    # smoke: 4 methods x 5 images, 56 pixels per step -> 14 steps + the clean image
    assert len(aucs) == 20 and len(curves) == 20 * 15
    assert set(aucs["method"]) == {"inputxgrad", "std", "normlime", "random"}
    for metric in ("p_target", "entropy", "std_topk", "insertion"):
        assert (out / f"occlusion-{metric}.png").stat().st_size > 1000
    last = curves[curves["step"] == 14]
    assert last.groupby("image")["p_target"].nunique().max() == 1  # fully occluded: same
    assert "deletion AUC" in (out / "occlusion.md").read_text()
    bad = invoke("occlusion", "--preset", "smoke", "--step", "0", "--out", tmp_path / "x")
    assert bad.exit_code == 2


def test_kar_per_image_ranking_with_mask_only_control(tmp_path):
    """Hooker's per-image variant: every image explained, its mask learnt in a control run."""
    import numpy as np

    out = tmp_path / "per-image"
    result = invoke(
        "kar",
        "--preset",
        "smoke",
        "--ranking",
        "per-image",
        "--methods",
        "inputxgrad,random",
        "--fractions",
        "0.5",
        "--train-size",
        "600",
        "--test-size",
        "200",
        "--epochs",
        "1",
        "--no-progress",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "kar.csv")
    assert sorted(frame["kind"].unique()) == ["baseline", "kar", "mask-control"]
    maps = np.load(out / "rankings" / "per-image-inputxgrad-train.npy")
    assert maps.shape == (600, 784) and np.abs(maps).sum(axis=1).min() > 0
    control = frame[frame["kind"] == "mask-control"].set_index("method")["accuracy"]
    assert control["random"] < 0.3  # a random per-image mask carries no class information
    assert "Mask-only control" in (out / "kar.md").read_text()
