"""Do a finished KAR run's rankings carry information?  Retrain with them inverted.

KAR removes the *least* important features.  Removing the *most* important ones instead
(the ranking negated; ties at zero stay in index order) must hurt more if the ranking
means anything.  This script reuses a finished ``normlime kar`` output directory (its
explained model, cached rankings, replacement value, settings and run seeds) and retrains
the inverted variants, reporting their error gain against that run's baseline:

    python -m benchmarks.kar_inverted_control --out artifacts/bench/kar-conv-cpu \
        --data ../shared/data/mnist --methods normlime,smoothgrad --fractions 0.5,0.9

Results are appended to ``OUT/inverted-jobs.jsonl`` (resumable, same job engine).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.benchmarks.jobs import Job, JobStore, derive_seed, run_jobs
from analysis.benchmarks.kar import (
    PIXEL_MEAN,
    KarSettings,
    kar_context,
    kar_job,
    predict,
    subset_data,
)
from explainers.data import load_mnist
from explainers.model import load


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="a finished normlime kar --out")
    ap.add_argument("--data", required=True, help="the MNIST spec that run used")
    ap.add_argument("--methods", default="normlime")
    ap.add_argument("--fractions", default="0.9")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)

    meta = json.loads((args.out / "kar.json").read_text())
    s = meta["settings"]
    settings = KarSettings(
        **{
            **s,
            "methods": tuple(f"{m}-inverted" for m in args.methods.split(",")),
            "fractions": tuple(float(f) for f in args.fractions.split(",")),
            "runs": args.runs,
        }
    )
    data = subset_data(load_mnist(args.data), s["train_size"], s["test_size"], s["seed"])
    model = load(args.out / "model.pt")
    pred = {k: predict(model, getattr(data, f"{k}_images")) for k in ("train", "test")}
    if s["replacement"] == "zero":
        replacement = 0.0
    elif s["features"] == "pixels":
        replacement = PIXEL_MEAN
    else:
        replacement = np.load(args.out / "replacement.npy")
    rankings = {}
    for m in args.methods.split(","):
        scores = np.load(args.out / "rankings" / f"{s['ranking']}-{m}.npz")["scores"]
        rankings[f"{m}-inverted"] = {"kind": s["ranking"], "scores": -scores, "per_image": {}}
    ctx = kar_context(settings, data, model, pred, replacement, rankings, "inverted")
    jobs = [
        Job(
            f"kar|{m}|{f:g}|{r}",
            derive_seed("kar-run", s["seed"], r),
            {"kind": "kar", "method": m, "fraction": f, "run": r},
        )
        for m in settings.methods
        for f in settings.fractions
        for r in range(settings.runs)
    ]
    store = JobStore(args.out / "inverted-jobs.jsonl", {"source": str(args.out)})
    rows = run_jobs(kar_job, jobs, ctx, store, n_jobs=args.jobs, threads=1, desc="inverted")
    base = pd.read_csv(args.out / "kar.csv")
    base_error = 1 - base[base["kind"] == "baseline"]["accuracy"].mean()
    table = pd.DataFrame(rows)
    table["error_gain"] = ((1 - table["accuracy"]) - base_error) * 100
    print(
        table.groupby(["method", "fraction"])["error_gain"]
        .agg(["mean", "std", "size"])
        .round(2)
        .to_string()
    )


if __name__ == "__main__":
    main()
