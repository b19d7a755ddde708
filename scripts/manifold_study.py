"""The data-manifold grid of issue 20: K x width (m) x explanations per digit.

The rules that read this grid were written first (docs/stimuli-protocol.md, part two).
Two disjoint sets of explained images per true digit (full MNIST train + test, different
seeds); the neighbour pool is the training split for both.  For every image and width m,
N neighbours are drawn from the data with the ESS-calibrated Gaussian kernel
(``explainers.neighbourhood``) and every K shares one LASSO path; a second, independent
draw of N neighbours gives the held-out R^2.  Then, for every cell (m, K) and every n of
``--ns``, the class maps from the first n explanations per digit of each set give:

* stability: displayed NormLIME and LIME, Pearson r per digit between the two sets;
* the median CV of |E_y(c_i)| (does NormLIME's normalisation act?);
* diagnostics the rule does not use: displayed NormLIME vs LIME r, the shares of displayed
  mass on the digit's ink, in the 3-pixel frame and outside the digit's support, the share
  on pixels used by fewer than 5% of the digit's explanations, in-sample and held-out R^2;
* for every cell, r(n) = n / (n + c) fitted to the worst digit, n90 = 9c; and the measured
  seconds per explanation of ``LocalLime.explain`` with that setting.

Features whose variation rests on fewer than 10 of an explanation's distinct neighbours
get no slope, as in ``LocalLime`` (the protocol's amendment after the first grid, which
ran without it: ``--first-grid`` reproduces that).

    .venv/bin/python scripts/manifold_study.py explain --data ../shared/data/mnist \\
        --out artifacts/manifold-study          # the local explanations (resumable per set)
    .venv/bin/python scripts/manifold_study.py report --data ../shared/data/mnist \\
        --out artifacts/manifold-study --json docs/results/stimuli-manifold-grid.json
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

from explainers import seeds as seedlib  # noqa: E402
from explainers.data import as_float, image_pool, load_mnist  # noqa: E402
from explainers.inspect import border_mask, ink_masks, support_masks  # noqa: E402
from explainers.lime import LocalLime, inference_forward  # noqa: E402
from explainers.local_fit import fit_local_models_batch  # noqa: E402
from explainers.model import file_checksum, load  # noqa: E402
from explainers.neighbourhood import DataNeighbourhood  # noqa: E402
from explainers.normlime import (  # noqa: E402
    class_usage_counts,
    display_class_maps,
    usage_spread,
)
from explainers.stability import (  # noqa: E402
    as_displayed,
    first_per_label,
    pearson_per_class,
    split_pools,
)

RARE_USE = 0.05  # "pixels used by fewer than 5% of the digit's explanations"


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def allowed_ks(m: int, ks: list[int]) -> list[int]:
    """Rule 1: m >= 10 K."""
    return [k for k in ks if m >= 10 * k]


def pool_outputs(fwd, images: torch.Tensor, batch: int = 1000) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([fwd(images[s : s + batch]) for s in range(0, len(images), batch)]).numpy()


def _load(args):
    data = load_mnist(args.data)
    model = load(args.model)
    fwd = inference_forward(model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "pool-outputs.npz"
    sha = file_checksum(args.model)
    pool = as_float(data.train_images)
    if cache.is_file() and str(np.load(cache)["sha"]) == sha:
        outputs = np.load(cache)["outputs"]
    else:
        t0 = time.perf_counter()
        outputs = pool_outputs(fwd, pool)
        print(f"pool outputs: {len(pool):,} images in {time.perf_counter() - t0:.1f} s", flush=True)
        np.savez(cache, outputs=outputs, sha=sha)
    return data, fwd, pool, outputs


def explain(args) -> None:
    data, fwd, pool, outputs = _load(args)
    nb = DataNeighbourhood(pool, outputs, min_varying=0 if args.first_grid else 10)
    sizes, ks = _ints(args.sizes), _ints(args.ks)
    explained = image_pool(data, "all")
    sets = split_pools(explained.labels, args.per_class, args.seed, n_pools=2)
    for s, idx in enumerate(sets):
        path = Path(args.out) / f"set{s}.npz"
        if path.is_file():
            print(f"{path} exists; skipped", flush=True)
            continue
        t0 = time.perf_counter()
        x = as_float(explained.images[idx])
        with torch.inference_mode():
            pred = torch.cat([fwd(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
        pred = pred.numpy()
        run_seed = args.seed + s
        fit_seeds = [seedlib.derive(run_seed, 1, int(p)) for p in idx]
        held_seeds = [seedlib.derive(run_seed, 3, int(p)) for p in idx]
        n, d = len(idx), 784
        weights = {(m, k): np.zeros((n, d), np.float32) for m in sizes for k in allowed_ks(m, ks)}
        r2 = {key: np.zeros(n) for key in weights}
        held = {key: np.zeros(n) for key in weights}
        for start in range(0, n, args.block):
            rows = np.arange(start, min(n, start + args.block))
            probs = nb.probabilities_for(x[rows], sizes)
            for m, pm in zip(sizes, probs, strict=True):
                km = allowed_ks(m, ks)
                for g in range(0, rows.size, 16):
                    grp = rows[g : g + 16]
                    zs, ys, pis, hold = [], [], [], []
                    for i in grp:
                        b = i - start
                        for seed, dest in ((fit_seeds[i], None), (held_seeds[i], hold)):
                            sel, counts = nb.draw(pm[b], seed, args.samples)
                            z = (pool[torch.from_numpy(sel)] - x[i]).reshape(sel.size, d).numpy()
                            y = outputs[sel, pred[i]]
                            if dest is None:
                                # as LocalLime does: features carried by < 10 neighbours
                                z[:, nb.fixed_features(z)] = 0.0
                                zs.append(z)
                                ys.append(y)
                                pis.append(counts)
                            else:
                                dest.append((z, y, counts))
                    fits = fit_local_models_batch(zs, ys, pis, km)
                    for i, image_fits, (zh, yh, ch) in zip(grp, fits, hold, strict=True):
                        for k, (w, b0, fit_r2) in zip(km, image_fits, strict=True):
                            weights[(m, k)][i] = w
                            r2[(m, k)][i] = fit_r2
                            held[(m, k)][i] = _weighted_r2(zh @ w + b0, yh, ch)
            done = rows[-1] + 1
            el = time.perf_counter() - t0
            print(f"set {s}: {done}/{n} images, {el:.0f} s", flush=True)
        arrays = {"index": idx, "true": explained.labels[idx], "pred": pred}
        for (m, k), w in weights.items():
            arrays[f"w_{m}_{k}"] = w
            arrays[f"r2_{m}_{k}"] = r2[(m, k)]
            arrays[f"held_{m}_{k}"] = held[(m, k)]
        np.savez_compressed(path, **arrays)
        print(f"wrote {path} ({time.perf_counter() - t0:.0f} s)", flush=True)
    timing = Path(args.out) / "timing.json"
    if not timing.is_file():
        timing.write_text(json.dumps(time_cells(args, fwd, nb, sizes, ks, explained), indent=1))


def _weighted_r2(pred: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    y_bar = float(w @ y / w.sum())
    total = float(w @ (y - y_bar) ** 2)
    return 0.0 if total <= 0 else 1.0 - float(w @ (y - pred) ** 2) / total


def time_cells(args, fwd, nb, sizes, ks, explained) -> dict:
    """Seconds per explanation of LocalLime.explain for every cell, on 160 images."""
    rng = np.random.default_rng(args.seed + 7)
    idx = rng.choice(len(explained.labels), 160, replace=False)
    x = as_float(explained.images[idx])
    with torch.inference_mode():
        target = fwd(x).argmax(1)
    out = {}
    for m in sizes:
        nb.effective_size = float(m)
        for k in allowed_ks(m, ks):
            lime = LocalLime(fwd, n_samples=args.samples, n_features=k, neighbourhood=nb,
                             random_state=0)  # fmt: skip
            t0 = time.perf_counter()
            lime.explain(x, target)
            out[f"{m}_{k}"] = (time.perf_counter() - t0) / len(idx)
            print(f"m={m} K={k}: {out[f'{m}_{k}'] * 1e3:.1f} ms per explanation", flush=True)
    return out


def _fit_c(ns, rs) -> float:
    from scipy.optimize import least_squares

    ns, rs = np.asarray(ns, float), np.asarray(rs, float)
    fit = least_squares(lambda c: ns / (ns + c[0]) - rs, x0=[50.0], bounds=(0, np.inf))
    return float(fit.x[0])


def _shares(shown: np.ndarray, masks: np.ndarray) -> np.ndarray:
    total = shown.sum(1)
    part = (shown * masks.reshape(len(masks), -1)).sum(1)
    return np.divide(part, total, out=np.zeros_like(part), where=total > 0)


def report(args) -> list[dict]:
    data = load_mnist(args.data)
    ink = ink_masks(data.train_images, data.train_labels).reshape(10, -1)
    support = support_masks(data.train_images, data.train_labels).reshape(10, -1)
    frame = np.broadcast_to(border_mask().ravel(), (10, 784))
    out = Path(args.out)
    za, zb = np.load(out / "set0.npz"), np.load(out / "set1.npz")
    timing = json.loads((out / "timing.json").read_text())
    ns = _ints(args.ns)
    cells = sorted(
        {tuple(int(v) for v in k[2:].split("_")) for k in za.files if k.startswith("w_")}
    )
    rows = []
    print("| m | K | n/digit | NormLIME r min / mean | LIME r min / mean | CV | NL vs LIME r "
          "| ink NL / LIME | frame NL / LIME | off-support NL / LIME | rare-pixel NL / LIME "
          "| R^2 in / held-out median |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for m, k in cells:
        key = f"{m}_{k}"
        wa_all, wb_all = za[f"w_{key}"], zb[f"w_{key}"]
        curve = {"normlime": [], "lime": []}
        for n in ns:
            ra, rb = first_per_label(za["true"], n), first_per_label(zb["true"], n)
            ma = display_class_maps(wa_all[ra], za["pred"][ra], 10)
            mb = display_class_maps(wb_all[rb], zb["pred"][rb], 10)
            shown = {x: as_displayed(ma[x]) for x in ("normlime", "lime")}
            other = {x: as_displayed(mb[x]) for x in ("normlime", "lime")}
            r = {x: pearson_per_class(shown[x], other[x]) for x in shown}
            usage = class_usage_counts(wa_all[ra], za["pred"][ra], 10)
            per_label = np.bincount(za["pred"][ra], minlength=10)[:, None]
            rare = (usage > 0) & (usage < RARE_USE * per_label)
            cross = pearson_per_class(shown["normlime"], shown["lime"])
            row = {
                "effective_size": m, "K": k, "per_class": n,
                **{f"{x}_r_min": float(r[x].min()) for x in r},
                **{f"{x}_r_mean": float(r[x].mean()) for x in r},
                **{f"{x}_r_per_digit": np.round(r[x], 4).tolist() for x in r},
                "usage_cv_median": float(np.median(usage_spread(usage))),
                "normlime_vs_lime_r": np.round(cross, 4).tolist(),
                "mean_r2": float(za[f"r2_{key}"][ra].mean()),
                # the mean is dominated by held-out draws whose f barely varies (R^2 of a
                # near-constant target runs to minus infinity): the median says more
                "mean_heldout_r2": float(za[f"held_{key}"][ra].mean()),
                "median_heldout_r2": float(np.median(za[f"held_{key}"][ra])),
                "heldout_r2_negative_share": float((za[f"held_{key}"][ra] < 0).mean()),
                "max_abs_weight_q99": float(np.quantile(np.abs(wa_all[ra]).max(1), 0.99)),
                "s_per_explanation": timing.get(key),
            }  # fmt: skip
            for x in shown:
                row[f"{x}_ink_share"] = np.round(_shares(shown[x], ink), 4).tolist()
                row[f"{x}_frame_share"] = np.round(_shares(shown[x], frame), 4).tolist()
                row[f"{x}_off_support_share"] = np.round(_shares(shown[x], ~support), 4).tolist()
                row[f"{x}_rare_pixel_share"] = np.round(_shares(shown[x], rare), 4).tolist()
            rows.append(row)
            for x in curve:
                curve[x].append(row[f"{x}_r_min"])

            def mean(key_, row=row):
                nl, li = np.mean(row["normlime_" + key_]), np.mean(row["lime_" + key_])
                return f"{nl:.2f} / {li:.2f}"

            print(
                f"| {m} | {k} | {n} | {row['normlime_r_min']:.3f} / {row['normlime_r_mean']:.3f}"
                f" | {row['lime_r_min']:.3f} / {row['lime_r_mean']:.3f} | "
                f"{row['usage_cv_median']:.2f} | {min(cross):.2f}-{max(cross):.2f} | "
                f"{mean('ink_share')} | {mean('frame_share')} | {mean('off_support_share')} | "
                f"{mean('rare_pixel_share')} | {row['mean_r2']:.2f} / "
                f"{row['median_heldout_r2']:.2f} |",
                flush=True,
            )
        fit = {"effective_size": m, "K": k, "fit": True}
        for x in curve:
            c = _fit_c(ns, curve[x])
            fit[f"{x}_c"] = c
            fit[f"{x}_n90"] = 9 * c
        rows.append(fit)
        print(f"m={m} K={k}: n90 NormLIME {fit['normlime_n90']:.0f}, LIME "
              f"{fit['lime_n90']:.0f}", flush=True)  # fmt: skip
    decision = apply_rule(rows, ns[-1])
    rows.append({"decision": decision})
    print(json.dumps(decision, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return rows


#: the protocol's numbers (docs/stimuli-protocol.md, part two)
MIN_CV = 0.5
BUDGET = 3000
MARGIN = 1.25


def apply_rule(rows: list[dict], n_cv: int) -> dict:
    """The protocol's rule, mechanically: rules 1-6 of part two on the grid's rows.

    Rule 1 (m >= 10 K) decided which cells were computed; rule 2 reads the median CV of
    |E_y(c_i)| at the largest n measured (``n_cv``); rule 3 the fitted n90 of both maps."""
    fits = {(r["effective_size"], r["K"]): r for r in rows if r.get("fit")}
    cv = {
        (r["effective_size"], r["K"]): r["usage_cv_median"]
        for r in rows
        if not r.get("fit") and r.get("per_class") == n_cv
    }
    table = []
    for (m, k), fit in sorted(fits.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        n90 = max(fit["normlime_n90"], fit["lime_n90"])
        table.append({
            "effective_size": m, "K": k, "usage_cv_median": cv[(m, k)], "n90": n90,
            "passes_cv": cv[(m, k)] >= MIN_CV, "passes_stability": n90 <= BUDGET,
        })  # fmt: skip
    passing = [t for t in table if t["passes_cv"] and t["passes_stability"]]
    if passing:
        k = min(t["K"] for t in passing)
        chosen = min((t for t in passing if t["K"] == k), key=lambda t: t["effective_size"])
        per_class = min(BUDGET, 100 * int(np.ceil(MARGIN * chosen["n90"] / 100)))
        met = True
    else:
        cands = [t for t in table if t["passes_cv"]]
        chosen = min(cands, key=lambda t: t["n90"])
        per_class, met = BUDGET, False
    return {"cells": table, "chosen": chosen, "per_class": per_class, "criterion_met": met}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("phase", choices=("explain", "report"))
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default=str(REPO / "assets" / "model" / "mnist-cnn.pt"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-class", type=int, default=800)
    ap.add_argument("--sizes", default="100,300,1000,3000,10000")
    ap.add_argument("--ks", default="10,20,50,100")
    ap.add_argument("--ns", default="100,200,400,800")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--json", default=None)
    ap.add_argument("--first-grid", action="store_true",
                    help="the first grid: every varying feature is a candidate")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    if args.phase == "explain":
        from threadpoolctl import threadpool_limits

        # the fits are small matrix products: single-threaded BLAS, as in LocalLime
        with threadpool_limits(limits=1, user_api="blas"):
            explain(args)
    else:
        report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
