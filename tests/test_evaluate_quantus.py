"""Our metrics against Quantus 0.6 (a dev dependency) on the same model, images,
attributions and settings (the runners are benchmarks/evaluate.py's)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("quantus")

from benchmarks.evaluate import (  # noqa: E402
    mnist_setup,
    ours_deletion,
    ours_faithfulness,
    ours_road,
    quantus_deletion,
    quantus_faithfulness,
    quantus_road,
)


@pytest.fixture(scope="module")
def setup():
    return mnist_setup(24)


def test_road_matches_quantus(setup):
    model, logits, x, labels, _pred, a = setup
    # noise 0: the imputation is exact on both sides, so the accuracies are equal
    ours, theirs = ours_road(model, x, labels, a), quantus_road(logits, x, labels, a)
    np.testing.assert_array_equal(ours, theirs)


def test_deletion_matches_quantus_pixel_flipping(setup):
    model, logits, x, _labels, pred, a = setup
    ours = ours_deletion(model, x, pred, a, 16)
    theirs = quantus_deletion(logits, x, pred, a, 16)
    # ours: the engine's channels-last convolutions and a float64 softmax; Quantus: eager
    # float32.  Measured max difference 6.5e-7 (100 images, benchmarks/evaluate.py)
    np.testing.assert_allclose(ours, theirs, atol=5e-6)


def test_faithfulness_correlation_matches_quantus_on_its_own_subsets(setup):
    model, logits, x, _labels, pred, a = setup
    theirs, subsets = quantus_faithfulness(logits, x, pred, a, 30, 78, seed=3)
    ours = ours_faithfulness(model, x, pred, a, 30, 78, subsets)
    # float32 logits summed in another order: measured max difference 3.3e-7
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # ...and Quantus' own draw is unseeded: another global seed, other numbers
    again, _ = quantus_faithfulness(logits, x, pred, a, 30, 78, seed=4)
    assert not np.allclose(again, theirs)
