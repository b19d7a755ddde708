"""Stability of class-level NormLIME and LIME maps between independent runs (issue 2, item 10).

Builds two disjoint pools of test images per digit (different images, different noise
seeds), computes local explanations for every setting on shared samples (see
``explainers.stability``), and prints/saves, for every setting and number of local
explanations per digit, the min and mean over digits of the Pearson correlation between
the two pools' class maps, next to the measured wall time of that setting.

Example (the run reported in docs/explainers-lime.md)::

    nice -n 10 .venv/bin/python scripts/stability_study.py --data /work/shared/data/mnist \\
        --sigmas 0.3,0.5 --samples 500,1000 --ks 20,50,100 --per-class 25,50,100,200 \\
        --out artifacts/stability.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from explainers.data import as_float, load_mnist  # noqa: E402
from explainers.lime import inference_forward, per_input_seeds  # noqa: E402
from explainers.model import load  # noqa: E402
from explainers.stability import (  # noqa: E402
    FitSpec,
    Pool,
    fit_pool,
    sample_pool,
    split_pools,
    stability_rows,
    time_setting,
)


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _widths(text: str) -> list[float | None]:
    return [None if t.strip() in ("", "default", "none") else float(t) for t in text.split(",")]


def _print_rows(rows) -> None:
    print(
        f"{'sigma':>5} {'N':>5} {'K':>4} {'width':>6} {'n/cls':>5} {'R2':>5} "
        f"{'NL min':>6} {'NL mean':>7} {'LIME min':>8} {'LIME mean':>9} {'s/expl':>6} {'wall s':>7}"
    )
    for r in rows:
        print(
            f"{r['sigma']:>5} {r['n_samples']:>5} {r['n_features']:>4} "
            f"{str(r['width_factor'] or 1):>6} {r['per_class']:>5} {r['mean_r2']:>5.2f} "
            f"{r['normlime_min']:>6.3f} {r['normlime_mean']:>7.3f} {r['lime_min']:>8.3f} "
            f"{r['lime_mean']:>9.3f} {r.get('s_per_explanation', 0):>6.3f} "
            f"{r.get('lime_wall_s', 0):>7.0f}",
            flush=True,
        )


def _save_pools(path: Path, pools) -> None:
    """Keep the local explanations so that other aggregations can be studied offline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for p, pool in enumerate(pools):
        arrays[f"p{p}_index"] = pool.image_index
        arrays[f"p{p}_true"] = pool.true_label
        arrays[f"p{p}_pred"] = pool.pred_label
        for s, w in pool.weights.items():
            tag = f"{s.n_samples}_{s.n_features}_{s.width_factor}"
            arrays[f"p{p}_w_{tag}"] = w
            arrays[f"p{p}_r2_{tag}"] = pool.r2[s]
    np.savez_compressed(path, **arrays)


def _outputs(samples_dir, forward, images, index, seeds, sigma, n_max, p, args):
    """Model outputs of the pool's samples: loaded when an earlier run saved them."""
    path = samples_dir / (
        f"outputs-{args.images}-seed{args.seed}-pool{p}-sigma{sigma}-n{len(index)}.npz"
    )
    if path.is_file():
        with np.load(path) as z:
            if (
                z["outputs"].shape[1] >= n_max
                and np.array_equal(z["index"], index)
                and np.array_equal(z["seeds"], seeds)
            ):
                print(f"reusing the model outputs in {path}", file=sys.stderr)
                return z["outputs"][:, :n_max], z["pred"]
    with torch.inference_mode():
        pred = forward(images).argmax(1).numpy()
    desc = f"sigma={sigma} pool {'AB'[p]} forward"
    with tqdm(total=len(index), desc=desc, file=sys.stderr, mininterval=10) as bar:
        outputs = sample_pool(
            forward, images, pred, seeds, sigma, n_max,
            batch_size=args.batch_size, progress=bar.update,
        )
    samples_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, index=index, seeds=seeds, pred=pred, outputs=outputs)
    return outputs, pred


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default="/work/shared/data/mnist")
    ap.add_argument("--model", default=str(REPO / "assets" / "model" / "mnist-cnn.pt"))
    ap.add_argument("--sigmas", default="0.5")
    ap.add_argument("--samples", default="1000")
    ap.add_argument("--ks", default="20,100")
    ap.add_argument("--widths", default="default", help="kernel width factors (default=1)")
    ap.add_argument("--per-class", default="25,50,100")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--images",
        choices=["test", "all"],
        default="test",
        help="pool images from the test set, or from train + test (the class maps do not "
        "depend on whether the model saw an image)",
    )
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--timing-images", type=int, default=10)
    ap.add_argument("--out", default=str(REPO / "artifacts" / "stability.json"))
    ap.add_argument("--save-pools", default=None, help="directory for the pools' explanations")
    ap.add_argument(
        "--samples-dir",
        default=str(REPO / "artifacts" / "stability-samples"),
        help="model outputs of the pools' samples are kept here and reused by later runs",
    )
    args = ap.parse_args(argv)

    data = load_mnist(args.data)
    print(data.summary(), file=sys.stderr)
    model = load(args.model)
    forward = inference_forward(model)
    per_class = _ints(args.per_class)
    per_class_max = max(per_class)
    specs = [
        FitSpec(n_samples=m, n_features=k, width_factor=w)
        for m, k, w in itertools.product(_ints(args.samples), _ints(args.ks), _widths(args.widths))
    ]
    if args.images == "all":
        pool_images = np.concatenate([data.train_images, data.test_images])
        pool_labels = np.concatenate([data.train_labels, data.test_labels])
    else:
        pool_images, pool_labels = data.test_images, data.test_labels
    index_a, index_b = split_pools(pool_labels, per_class_max, seed=args.seed)
    rows = []
    started = time.perf_counter()
    n_max = max(s.n_samples for s in specs)  # samples drawn per image, shared by all specs
    samples_dir = Path(args.samples_dir)
    for sigma in _floats(args.sigmas):
        pools = []
        for p, index in enumerate((index_a, index_b)):
            images = as_float(pool_images[index])
            seeds = per_input_seeds(args.seed * 1000 + p, len(index))
            outputs, pred = _outputs(
                samples_dir, forward, images, index, seeds, sigma, n_max, p, args
            )
            desc = f"sigma={sigma} pool {'AB'[p]} fits"
            with tqdm(total=len(index), desc=desc, file=sys.stderr, mininterval=10) as bar:
                weights, r2 = fit_pool(images, seeds, outputs, sigma, specs, progress=bar.update)
            pools.append(Pool(sigma, index, pool_labels[index], pred, weights, r2))
        # measured cost of each setting on real images (excluded from the pools' time)
        timing_idx = index_a[:: max(1, len(index_a) // args.timing_images)][: args.timing_images]
        timing_images = as_float(pool_images[timing_idx])
        with torch.inference_mode():
            timing_targets = forward(timing_images).argmax(1).numpy()
        seconds = {
            (sigma, s): time_setting(
                forward, timing_images, timing_targets, sigma, s, batch_size=args.batch_size
            )
            for s in specs
        }
        sigma_rows = stability_rows(pools[0], pools[1], per_class, seconds)
        rows += sigma_rows
        _print_rows(sigma_rows)
        if args.save_pools:
            _save_pools(Path(args.save_pools) / f"pools-sigma{sigma}.npz", pools)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "data": data.provenance(),
                "model": args.model,
                "wall_time_s": round(time.perf_counter() - started, 1),
                "rows": rows,
            },
            indent=1,
        )
    )
    print("all settings:")
    _print_rows(rows)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
