"""`normlime train` end to end on the embedded data, and its input errors."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner

from explainers.model import file_checksum, load
from explainers.train import TrainConfig, train_model
from normlime_cli import cli


def test_train_reaches_95_percent_on_embedded_data(tmp_path):
    out = tmp_path / "model.pt"
    result = CliRunner().invoke(
        cli, ["train", "--data", "embedded", "--epochs", "3", "--seed", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "embedded MNIST subset" in result.output and "10,000 train + 2,000 test" in result.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["test_accuracy"] >= 0.95
    assert meta["seed"] == 3 and meta["epochs"] == 3 and meta["data"]["source"] == "embedded"
    assert meta["wall_time_s"] > 0 and meta["sha256"] == file_checksum(out)
    assert not load(out).training


def test_training_is_reproducible_from_the_seed(embedded_data):
    small = embedded_data.__class__(
        source="embedded",
        description="first 1,000 embedded digits",
        train_images=embedded_data.train_images[::10],
        train_labels=embedded_data.train_labels[::10],
        test_images=embedded_data.test_images[:200],
        test_labels=embedded_data.test_labels[:200],
    )
    a = train_model(small, TrainConfig(epochs=1, seed=7))
    b = train_model(small, TrainConfig(epochs=1, seed=7))
    c = train_model(small, TrainConfig(epochs=1, seed=8))
    for (name, pa), pb in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=name)
    assert not torch.equal(a.model.fc3.weight, c.model.fc3.weight)


def test_bad_data_path_exits_2_with_one_line(tmp_path):
    result = CliRunner().invoke(
        cli, ["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "m.pt")]
    )
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines == [f"Error: data path {tmp_path / 'missing'} does not exist"]
    assert not (tmp_path / "m.pt").exists()
