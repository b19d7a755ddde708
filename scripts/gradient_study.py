"""SmoothGrad / VarGrad class maps: logit against probability, and how many images per digit.

Two disjoint pools of images per digit (train + test of full MNIST, drawn with one seed)
get per-image SmoothGrad-squared and VarGrad maps from one set of noisy gradients (100
draws, sigma 0.3, as the paper), for the gradient of the target's logit and of its softmax
probability.  For n images per digit, the class map is the mean of the first n maps of a
pool; the script reports the Pearson r per digit between the two pools' class maps as
displayed (explainers.bundle.display_values), min and mean over digits, and, on a few
images, the largest share of a per-image map's energy that a single noise draw carries.

    .venv/bin/python scripts/gradient_study.py --data ../shared/data/mnist \\
        --per-class 10,20,50,100 --out artifacts/gradient-study.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from explainers.bundle import display_values  # noqa: E402
from explainers.data import as_float, image_pool, load_mnist  # noqa: E402
from explainers.gradients import noisy_gradient_maps, score_function, target_gradients  # noqa: E402
from explainers.model import load  # noqa: E402
from explainers.stability import pearson_per_class, split_pools  # noqa: E402

METHODS = ("smoothgrad", "vargrad")


def per_image_maps(model, images, targets, score, seed, chunk=20):
    out = {m: [] for m in METHODS}
    for s in range(0, len(images), chunk):
        got = noisy_gradient_maps(
            model, images[s : s + chunk], targets[s : s + chunk], random_state=seed + s,
            score=score,
        )
        for m in METHODS:
            out[m].append(got[m].reshape(got[m].shape[0], -1).numpy())
    return {m: np.concatenate(v) for m, v in out.items()}


def class_maps(maps, labels, n):
    return np.stack([maps[np.flatnonzero(labels == c)[:n]].mean(0) for c in range(10)])


def displayed(maps):
    return np.stack([display_values(m) for m in maps])


def top_draw_share(model, images, targets, score, n_draws=100, sigma=0.3, seed=0):
    """Per image: the largest fraction of sum_k ||g_k||^2 that one noise draw carries."""
    fn = score_function(model, score)
    gen = torch.Generator().manual_seed(seed)
    shares = []
    for x, t in zip(images, targets, strict=True):
        noisy = x[None] + sigma * torch.randn((n_draws, *x.shape), generator=gen)
        g = target_gradients(fn, noisy, torch.full((n_draws,), int(t)))
        energy = (g.double() ** 2).flatten(1).sum(1)
        shares.append(float(energy.max() / energy.sum()))
    return np.asarray(shares)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mnist"))
    ap.add_argument("--model", default=str(REPO / "assets" / "model" / "mnist-cnn.pt"))
    ap.add_argument("--per-class", default="10,20,50,100")
    ap.add_argument("--scores", default="logit,probability")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--energy-images", type=int, default=10)
    ap.add_argument("--out", default=str(REPO / "artifacts" / "gradient-study.json"))
    args = ap.parse_args(argv)
    ns = [int(t) for t in args.per_class.split(",")]
    data = load_mnist(args.data)
    print(data.summary(), file=sys.stderr)
    model = load(args.model)
    pool = image_pool(data, "all")
    pools = split_pools(pool.labels, max(ns), seed=args.seed)
    rows, energy = [], {}
    for score in args.scores.split(","):
        t0 = time.perf_counter()
        per_pool = []
        for p, index in enumerate(pools):
            x = as_float(pool.images[index])
            y = torch.as_tensor(pool.labels[index])
            per_pool.append(per_image_maps(model, x, y, score, seed=1000 * (args.seed + p)))
        seconds = time.perf_counter() - t0
        for n in ns:
            row = {"score": score, "per_class": n}
            for m in METHODS:
                a = displayed(class_maps(per_pool[0][m], pool.labels[pools[0]], n))
                b = displayed(class_maps(per_pool[1][m], pool.labels[pools[1]], n))
                r = pearson_per_class(a, b)
                row[f"{m}_min"], row[f"{m}_mean"] = float(r.min()), float(r.mean())
                row[f"{m}_per_digit"] = np.round(r, 3).tolist()
            row["s_per_image"] = seconds / (2 * len(pools[0]))
            rows.append(row)
            print(
                f"{score:>11} n={n:>4}  SmoothGrad r min/mean {row['smoothgrad_min']:.3f}/"
                f"{row['smoothgrad_mean']:.3f}  VarGrad {row['vargrad_min']:.3f}/"
                f"{row['vargrad_mean']:.3f}  ({row['s_per_image']:.3f} s per image)",
                flush=True,
            )
        idx = pools[0][:: max(1, len(pools[0]) // args.energy_images)][: args.energy_images]
        share = top_draw_share(
            model, as_float(pool.images[idx]), pool.labels[idx], score, seed=args.seed
        )
        energy[score] = {"min": float(share.min()), "median": float(np.median(share)),
                         "max": float(share.max())}
        print(f"{score:>11} largest single-draw energy share: {energy[score]}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows,
                               "top_draw_share": energy}, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
