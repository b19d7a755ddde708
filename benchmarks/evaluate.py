"""Benchmark: ``normlime evaluate``'s metrics against Quantus 0.6 on the same work, and
the digits project's whole evaluation.

    .venv/bin/python benchmarks/evaluate.py [--images 100] [--repeats 3] [--skip-digits]

Side by side, in one run, on the paper's MNIST CNN (the shipped model), the same test
images (the embedded subset), the same Saliency attributions and the same settings:

* ROAD MoRF (noisy linear imputation, noise 0, percentages 10..90): Quantus ``ROAD``;
* deletion (pixel flipping, 49 steps of 16 pixels, black substrate, softmax): Quantus
  ``PixelFlipping``;
* faithfulness correlation (100 subsets of 78 pixels, black substrate, logits): Quantus
  ``FaithfulnessCorrelation`` with the very subsets it draws, replayed into ours;
* the cascading model-randomisation check (5 layers from the top, Spearman, Saliency
  explanations): Quantus ``MPRT`` (timed only: each side re-initialises with its own
  random draws).

Ours run through ``normlime evaluate``'s forward engine (precompute's
``inference_forward``); both sides run in this process under the same malloc setting.
Each side runs ``--repeats`` times (Quantus first, then ours) and its median is reported,
with the agreement (maximum absolute difference).  Beside them: the same forward passes
alone, through eager PyTorch (as Quantus makes them) and through our engine; Quantus' time
over the faster of the two is the largest speed-up that any implementation of those
passes can show here, which says whether a missed target is the code's or the
arithmetic's.  Then the digits project (``normlime init-project``'s 8x8 example) is
trained, precomputed and evaluated with the default settings, and the evaluation is timed.
Targets (issue 23): every metric at least 10x faster than Quantus; the digits evaluation
under 2 minutes.

Quantus is a dev dependency (``pip install quantus==0.6.0``), never needed at run time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from functools import partial
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


def engine(model):
    """Our forward passes: precompute's inference engine, as ``normlime evaluate`` runs
    them (a float64 softmax of the logits; for faithfulness correlation, the logits)."""
    from explainers.lime import inference_forward

    return inference_forward(model)


def ours_road(model, x, labels, a):
    scores = metrics.feature_scores(a, None)
    curves = metrics.road_curves(engine(model), x, scores, None, labels,
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
        engine(model), x, scores, None, pred, steps=steps, substrate=[0.0], blurred=x,
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
    return metrics.faithfulness_correlation(engine(Logits(model)), x, scores, None, pred,
                                            n_subsets=runs, subset_size=size, substrate=[0.0],
                                            rng=0, subsets=subsets)  # fmt: skip


def saliency(model, x, target) -> np.ndarray:
    """|gradient| maps (N, H, W) of the logits: the explanation the randomisation check
    repeats per layer on both sides."""
    from captum.attr import Saliency

    net = model if isinstance(model, Logits) else Logits(model)
    maps = Saliency(net).attribute(x, target=torch.as_tensor(target), abs=True)
    return maps.detach().numpy()[:, 0]


def ours_randomisation(model, x, pred) -> np.ndarray:
    from analysis.evaluate.randomisation import cascading_randomisation

    _layers, rho = cascading_randomisation(model, saliency, x, pred, seed=0)
    return rho.mean(axis=1)


def quantus_randomisation(logits, x, pred, a) -> np.ndarray:
    """Quantus' cascading model-parameter randomisation (``MPRT``, top down, Spearman),
    explaining with its own Saliency; per layer, the mean correlation."""
    import quantus

    metric = quantus.MPRT(layer_order="top_down", seed=0, disable_warnings=True)
    out = metric(model=logits, x_batch=x.numpy(), y_batch=pred, a_batch=a, device="cpu",
                 explain_func=quantus.explain, explain_func_kwargs={"method": "Saliency"},
                 batch_size=len(x))  # fmt: skip
    return np.array([np.mean(v) for k, v in out.items() if k != "original"])


def timed(fn, *args, repeats: int = 1, **kwargs):
    """``fn``'s result and its median wall time over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def forward_passes(model, x, count: int, repeats: int) -> tuple[float, float]:
    """Seconds for ``count`` forward passes (of ``x`` repeated) alone: through eager
    PyTorch in batches of ``len(x)``, as Quantus runs them, and through our engine.  No
    implementation that makes these passes can be faster than the faster of the two
    allows; a metric's possible speed-up over Quantus is Quantus' time over this floor."""
    inputs = x.repeat(-(-count // len(x)), 1, 1, 1)[:count]

    def eager():
        with torch.no_grad():
            for start in range(0, count, len(x)):
                model(inputs[start : start + len(x)])

    _, t_eager = timed(eager, repeats=repeats)
    _, t_engine = timed(metrics.predict_batches, engine(model), inputs, repeats=repeats)
    return t_eager, t_engine


def compare(n: int, repeats: int = 3) -> list[dict]:
    """Each side ``repeats`` times, Quantus first; medians."""
    model, logits, x, labels, pred, a = mnist_setup(n)
    m = a[0].size
    size = m // 10
    work = [
        ("ROAD MoRF, 9 percentages", n * len(PERCENTAGES), model,
         lambda: ours_road(model, x, labels, a), lambda: quantus_road(logits, x, labels, a)),
        ("deletion / pixel flipping, 49 steps", n * (m // 16 + 1), model,
         lambda: ours_deletion(model, x, pred, a, 16),
         lambda: quantus_deletion(logits, x, pred, a, 16)),
        ("faithfulness correlation, 100 subsets", n * 101, logits, None,
         lambda: quantus_faithfulness(logits, x, pred, a, 100, size, seed=7)),
    ]  # fmt: skip
    rows = []
    for name, count, net, ours_fn, theirs_fn in work:
        theirs, t_q = timed(theirs_fn, repeats=repeats)
        if ours_fn is None:  # faithfulness: replay the subsets Quantus drew
            theirs, subsets = theirs
            ours_fn = partial(ours_faithfulness, model, x, pred, a, 100, size, subsets)
        ours, t_ours = timed(ours_fn, repeats=repeats)
        t_eager, t_engine = forward_passes(net, x, count, repeats)
        rows.append({
            "metric": name, "ours_s": t_ours, "quantus_s": t_q, "speed-up": t_q / t_ours,
            "forward_passes": count, "eager_forward_s": t_eager, "engine_forward_s": t_engine,
            "bound": t_q / min(t_eager, t_engine),
            "max_abs_diff": float(np.abs(ours - theirs).max()),
        })  # fmt: skip
    # the randomisation check: its cost is the explanations (gradient passes), one per
    # layer and one of the trained model; the re-initialisations are each side's own
    # random draws, so the correlations are close but not equal (no agreement column)
    layers = 5
    theirs, t_q = timed(quantus_randomisation, logits, x, pred, a, repeats=repeats)
    ours, t_ours = timed(ours_randomisation, model, x, pred, repeats=repeats)

    def gradients():
        for _ in range(layers + 1):
            saliency(model, x, pred)

    _, t_grad = timed(gradients, repeats=repeats)
    rows.append({
        "metric": f"model randomisation, {layers} layers", "ours_s": t_ours, "quantus_s": t_q,
        "speed-up": t_q / t_ours, "forward_passes": n * (layers + 1), "eager_forward_s": t_grad,
        "engine_forward_s": t_grad, "bound": t_q / t_grad, "max_abs_diff": None,
        "layer_means": {"ours": ours.tolist(), "quantus": theirs.tolist()},
    })  # fmt: skip
    return rows


def _diff(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2e}"


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
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs")
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the figures there (docs/results/evaluate-speed.json)")
    args = parser.parse_args()
    from explainers.lime import retain_freed_memory

    # as `normlime evaluate` does; process-wide, so Quantus runs under it too
    retain_freed_memory()
    print(f"{args.images} MNIST test images, Saliency, the shipped CNN, {torch.get_num_threads()} "
          "torch threads")  # fmt: skip
    print(f"{'metric':38} {'ours':>7} {'Quantus':>8} {'speed-up':>8} {'max |diff|':>10} "
          f"{'forwards':>8} {'eager':>7} {'engine':>7} {'possible':>8}")  # fmt: skip
    ok = True
    rows = compare(args.images, args.repeats)
    for r in rows:
        ok &= r["speed-up"] >= 10
        print(f"{r['metric']:38} {r['ours_s']:6.2f}s {r['quantus_s']:7.2f}s "
              f"{r['speed-up']:7.1f}x {_diff(r['max_abs_diff']):>10} {r['forward_passes']:8d} "
              f"{r['eager_forward_s']:6.2f}s {r['engine_forward_s']:6.2f}s {r['bound']:7.1f}x")
    print("forwards: the forward passes both sides make (randomisation: gradient passes); "
          "eager / engine: those passes alone "
          "through eager PyTorch (as Quantus) and through our engine; possible: Quantus' time "
          "over the faster of the two, the largest speed-up that any implementation making the "
          "same passes, no faster than these, can reach on this machine")
    wall = None
    if not args.skip_digits:
        wall = digits_evaluation()
        ok &= wall < 120
        print(f"digits project, whole `normlime evaluate` (defaults): {wall:.1f} s "
              "(target < 120 s)")  # fmt: skip
    if args.json is not None:
        import json
        import platform

        report = {
            "date": time.strftime("%Y-%m-%d"), "images": args.images, "repeats": args.repeats,
            "cpu": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(), "rows": rows,
            "digits_evaluation_s": wall, "targets_met": bool(ok),
        }  # fmt: skip
        args.json.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print("targets met" if ok else "a target was missed")


if __name__ == "__main__":
    main()
