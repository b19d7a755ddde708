"""Benchmark: ``normlime evaluate``'s metrics against Quantus 0.6 on the same work, and
the digits project's whole evaluation.

    .venv/bin/python benchmarks/evaluate.py [--images 100] [--skip-digits]

Side by side, in one run, on the paper's MNIST CNN (the shipped model), the same test
images (the embedded subset), the same Saliency attributions and the same settings:

* ROAD MoRF (noisy linear imputation, noise 0, percentages 10..90): Quantus ``ROAD``;
* deletion (pixel flipping, 49 steps of 16 pixels, black substrate, softmax): Quantus
  ``PixelFlipping``;
* faithfulness correlation (100 subsets of 78 pixels, black substrate, logits): Quantus
  ``FaithfulnessCorrelation`` with the very subsets it draws, replayed into ours.

Each is timed and checked for agreement (maximum absolute difference).  Then the digits
project (``normlime init-project``'s 8x8 example) is trained, precomputed and evaluated
with the default settings, and the evaluation is timed.  Targets (issue 23): every metric
at least 10x faster than Quantus; the digits evaluation under 2 minutes.

Quantus is a dev dependency (``pip install quantus==0.6.0``), never needed at run time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analysis.evaluate import metrics  # noqa: E402

PERCENTAGES = [10, 20, 30, 40, 50, 60, 70, 80, 90]


class Logits(torch.nn.Module):
    """The classifier's pre-softmax scores as a module (what Quantus wraps)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.logits(x)


def mnist_setup(n: int):
    from captum.attr import Saliency

    from explainers.data import as_float, load_mnist
    from explainers.model import load
    from explainers.shipped import shipped_model

    model = load(shipped_model()).eval()
    data = load_mnist("embedded")
    x = as_float(data.test_images[:n])
    labels = np.asarray(data.test_labels[:n])
    logits = Logits(model).eval()
    pred = logits(x).argmax(1).numpy()
    a = Saliency(logits).attribute(x, target=torch.as_tensor(pred), abs=True).detach().numpy()
    return model, logits, x, labels, pred, a


def quantus_road(logits, x, labels, a):
    import quantus

    metric = quantus.ROAD(noise=0.0, percentages=PERCENTAGES, normalise=False,
                          disable_warnings=True)  # fmt: skip
    out = metric(model=logits, x_batch=x.numpy(), y_batch=labels, a_batch=a, device="cpu",
                 batch_size=len(x))  # fmt: skip
    return np.array([out[p] for p in PERCENTAGES])


def ours_road(model, x, labels, a):
    scores = metrics.feature_scores(a, None)
    curves = metrics.road_curves(model, x, scores, None, labels,
                                 percentages=[p / 100 for p in PERCENTAGES], order="morf",
                                 noise=0.0, rng=0)  # fmt: skip
    return curves["correct"].mean(axis=0)


def quantus_deletion(logits, x, pred, a, step: int):
    import quantus

    metric = quantus.PixelFlipping(features_in_step=step, perturb_baseline="black",
                                   normalise=False, disable_warnings=True)  # fmt: skip
    out = metric(model=logits, x_batch=x.numpy(), y_batch=pred, a_batch=a, device="cpu",
                 softmax=True, batch_size=len(x))  # fmt: skip
    return np.asarray(out)


def ours_deletion(model, x, pred, a, step: int):
    scores = metrics.feature_scores(a, None)
    steps = scores.shape[1] // step
    curves = metrics.deletion_insertion(
        model, x, scores, None, pred, steps=steps, substrate=[0.0], blurred=x,
        curves=("deletion",),
    )  # fmt: skip
    return curves["deletion"][:, 1:]


def quantus_faithfulness(logits, x, pred, a, runs: int, size: int, seed: int):
    """Quantus' values, and the subsets it drew (its unseeded ``np.random.choice`` calls,
    recorded as they happen: run by run, image by image, one batch)."""
    import quantus

    np.random.seed(seed)
    metric = quantus.FaithfulnessCorrelation(
        nr_runs=runs, subset_size=size, perturb_baseline="black", normalise=False,
        return_aggregate=False, disable_warnings=True,
    )  # fmt: skip
    drawn, choice = [], np.random.choice

    def recording(*args, **kwargs):
        out = choice(*args, **kwargs)
        drawn.append(out)
        return out

    np.random.choice = recording
    try:
        out = metric(model=logits, x_batch=x.numpy(), y_batch=pred, a_batch=a, device="cpu",
                     softmax=False, batch_size=len(x))  # fmt: skip
    finally:
        np.random.choice = choice
    return np.asarray(out), np.stack(drawn).reshape(runs, len(x), size)


def ours_faithfulness(model, x, pred, a, runs: int, size: int, subsets=None):
    scores = metrics.feature_scores(a, None)
    return metrics.faithfulness_correlation(model.logits, x, scores, None, pred,
                                            n_subsets=runs, subset_size=size, substrate=[0.0],
                                            rng=0, subsets=subsets)  # fmt: skip


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def compare(n: int) -> list[dict]:
    model, logits, x, labels, pred, a = mnist_setup(n)
    m = a[0].size
    rows = []
    ours, t_ours = timed(ours_road, model, x, labels, a)
    theirs, t_q = timed(quantus_road, logits, x, labels, a)
    rows.append(("ROAD MoRF, 9 percentages", t_ours, t_q, np.abs(ours - theirs).max()))
    ours, t_ours = timed(ours_deletion, model, x, pred, a, 16)
    theirs, t_q = timed(quantus_deletion, logits, x, pred, a, 16)
    rows.append(("deletion / pixel flipping, 49 steps", t_ours, t_q, np.abs(ours - theirs).max()))
    size = m // 10
    (theirs, subsets), t_q = timed(quantus_faithfulness, logits, x, pred, a, 100, size, seed=7)
    ours, t_ours = timed(ours_faithfulness, model, x, pred, a, 100, size, subsets)
    rows.append(("faithfulness correlation, 100 subsets", t_ours, t_q,
                 np.abs(ours - theirs).max()))  # fmt: skip
    return [
        {"metric": r[0], "ours_s": r[1], "quantus_s": r[2], "speed-up": r[2] / r[1],
         "max_abs_diff": float(r[3])}
        for r in rows
    ]  # fmt: skip


def digits_evaluation() -> float:
    from tests.project_fixtures import run_cli

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "digits"
        run_cli("init-project", root)
        run_cli("train", "--project", root)
        run_cli("precompute", "--project", root)
        t0 = time.perf_counter()
        run_cli("evaluate", "--project", root, "--out", Path(tmp) / "eval", "--no-progress")
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--skip-digits", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"{args.images} MNIST test images, Saliency, the shipped CNN, {torch.get_num_threads()} "
          "torch threads")  # fmt: skip
    print(f"{'metric':42} {'ours':>8} {'Quantus':>9} {'speed-up':>9} {'max |diff|':>11}")
    ok = True
    for r in compare(args.images):
        ok &= r["speed-up"] >= 10
        print(f"{r['metric']:42} {r['ours_s']:7.2f}s {r['quantus_s']:8.2f}s "
              f"{r['speed-up']:8.1f}x {r['max_abs_diff']:11.2e}")  # fmt: skip
    if not args.skip_digits:
        wall = digits_evaluation()
        ok &= wall < 120
        print(f"digits project, whole `normlime evaluate` (defaults): {wall:.1f} s "
              "(target < 120 s)")  # fmt: skip
    print("targets met" if ok else "a target was missed")


if __name__ == "__main__":
    main()
