"""Occlusion metrics and RISE deletion/insertion: exact vectors, a constructed case, sanity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from analysis.benchmarks.jobs import Job
from analysis.benchmarks.occlusion import (
    METRICS,
    auc,
    descending_order,
    game_batch,
    game_curves,
    occlusion_job,
)


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        ([1, 0], 0.5),
        ([1, 1, 1], 1.0),
        ([1, 0.5, 0], 0.5),
        ([0, 1, 1, 1, 1], 0.875),
        ([0.9, 0.6, 0.3, 0.1, 0.05], 0.36875),
    ],
)
def test_rise_auc_exact_vectors(curve, expected):
    assert auc(curve) == pytest.approx(expected, abs=1e-12)


def _toy_forward(x):
    """score = sigmoid(w.x): a 2-class softmax with logits [w.x, 0], in float64."""
    w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    logit = x.reshape(x.shape[0], -1) @ w
    return torch.softmax(torch.stack([logit, torch.zeros_like(logit)], 1), 1)


def test_toy_example_of_the_protocol_notes_exactly():
    x = torch.ones(1, 2, 2, dtype=torch.float64)
    s = np.array([0.1, 0.9, 0.5, 0.3])
    zeros = torch.zeros_like(x)
    c = game_curves(_toy_forward, x, s, 1, 0.0, top_k=2, insertion_start=zeros)
    assert c["target"] == 0
    np.testing.assert_allclose(
        c["p_target"], [0.9999546, 0.9996646, 0.9933071, 0.7310586, 0.5], atol=1e-7
    )
    assert auc(c["p_target"]) == pytest.approx(0.8685019196602258, abs=1e-12)
    assert auc(c["insertion"]) == pytest.approx(0.9059895333858149, abs=1e-12)
    c2 = game_curves(_toy_forward, x, s, 2, 0.0, top_k=2, insertion_start=zeros)
    assert c2["n_occluded"].tolist() == [0, 2, 4]
    assert auc(c2["p_target"]) == pytest.approx(0.8716422250706821, abs=1e-12)


def test_order_is_descending_with_lower_index_first_on_ties():
    s = np.array([0.2, -0.9, 0.2, 0.5, 0.0])
    assert descending_order(s, "abs").tolist() == [1, 3, 0, 2, 4]
    assert descending_order(s, "signed").tolist() == [3, 0, 2, 4, 1]


def test_game_batch_schedule_and_cumulative_occlusion():
    x = torch.arange(1.0, 65.0).reshape(1, 8, 8)
    order = np.arange(64)[::-1].copy()
    batch, counts = game_batch(x, torch.zeros_like(x), order, 10)
    assert counts.tolist() == [0, 10, 20, 30, 40, 50, 60, 64]  # ceil(64/10) + 1 points
    flat = batch.reshape(8, -1)
    assert torch.equal(flat[0], x.reshape(-1))
    assert (flat[-1] == 0).all()
    for t in range(1, 8):  # earlier occlusions are kept
        assert ((flat[t] == 0) >= (flat[t - 1] == 0)).all()
        assert int((flat[t] == 0).sum()) == counts[t]


def test_metrics_move_in_the_expected_direction_on_a_constructed_model():
    """Only 8 pixels drive the target; occluding them first must show it in every metric."""
    key = np.zeros(64, dtype=bool)
    key[[9, 10, 17, 18, 41, 42, 49, 50]] = True
    decoy = np.zeros(64, dtype=bool)
    decoy[[0, 7, 14, 21, 28, 35, 56, 63]] = True
    w = torch.zeros(10, 64, dtype=torch.float64)
    w[0, torch.as_tensor(key)] = 2.0

    def forward(batch):
        return torch.softmax(batch.reshape(batch.shape[0], -1) @ w.T, 1)

    x = torch.as_tensor((key | decoy).astype(float)).reshape(1, 8, 8)
    true_map = (w[0] * x.reshape(-1)).numpy()  # input x gradient of the logit
    decoy_map = decoy.astype(float)
    good = game_curves(forward, x, true_map, 4, 0.0, top_k=10)
    bad = game_curves(forward, x, decoy_map, 4, 0.0, top_k=10)
    a_good = {k: auc(good[k]) for k in METRICS}
    a_bad = {k: auc(bad[k]) for k in METRICS}
    assert a_good["p_target"] < a_bad["p_target"] - 0.3  # faster drop of p(target)
    assert a_good["entropy"] > a_bad["entropy"] + 0.5  # the output flattens sooner
    assert a_good["std_topk"] < a_bad["std_topk"] - 0.1
    assert a_good["insertion"] > a_bad["insertion"] + 0.1  # evidence comes back sooner


def test_occlusion_jobs_with_real_explainers_satisfy_the_sanity_properties(
    trained_model, test_images
):
    from dataclasses import asdict

    images, labels = test_images
    raw = (images[:3, 0] * 255).round().to(torch.uint8).numpy()
    with torch.inference_mode():
        targets = trained_model(images[:3]).argmax(1).numpy()
    ctx = {
        "token": "sanity",
        "model_config": asdict(trained_model.config),
        "model_state": {k: v.numpy() for k, v in trained_model.state_dict().items()},
        "images": raw,
        "targets": targets,
        "labels": labels[:3].numpy(),
        "class_scores": {},
        "method_params": {},
        "step": 28,
        "value": 0.1307,
        "top_k": 10,
        "order": "abs",
        "device": "cpu",
    }
    rows = {
        (m, i): occlusion_job(ctx, Job(f"{m}|{i}", 7, {"method": m, "image": i, "position": i}))
        for m in ("inputxgrad", "std", "random")
        for i in range(3)
    }
    for i in range(3):
        x = torch.from_numpy(raw[i : i + 1].astype(np.float32) / 255.0).unsqueeze(1)
        with torch.inference_mode():
            clean = trained_model(x)[0].numpy()
        firsts = [rows[(m, i)] for m in ("inputxgrad", "std", "random")]
        for r in firsts:
            assert len(r["p_target"]) == 29 and r["n_occluded"][-1] == 784
            assert r["p_target"][0] == pytest.approx(clean[targets[i]], abs=1e-6)
            assert all(0.0 <= p <= 1.0 for p in r["p_target"])
            assert all(-1e-9 <= h <= math.log(10) + 1e-9 for h in r["entropy"])
            assert all(s >= 0.0 for s in r["std_topk"])
            assert r["insertion"][-1] == pytest.approx(clean[targets[i]], abs=1e-6)
        for k in ("p_target", "entropy", "std_topk"):  # the fully occluded image
            assert len({round(r[k][-1], 6) for r in firsts}) == 1
    # a real explanation finds the evidence faster than a random order, on average
    mean_auc = {
        m: np.mean([rows[(m, i)]["auc"]["p_target"] for i in range(3)])
        for m in ("inputxgrad", "random")
    }
    assert mean_auc["inputxgrad"] < mean_auc["random"]
