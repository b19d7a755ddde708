"""Tables for docs/explainers-lime.md from saved stability pools and from two bundles.

``--pools`` takes the ``pools-*.npz`` files written by ``stability_study.py --save-pools``
and reports, for every fit setting and 10/20 local explanations per digit, the between-pool
Pearson correlation (min and mean over digits) of the class maps *as displayed*, plus the
number of explanations per digit that r = n / (n + c) extrapolates for r = 0.9 from the
20-per-digit minimum.

``--bundles A B`` takes two bundles written by ``normlime precompute --keep-local`` with
different seeds and reports the curve along the number of local explanations per digit
(the first n of each digit's random draw) next to the wall time that n costs (the
bundle's measured LIME time, pro rata).

    .venv/bin/python scripts/stability_report.py --pools artifacts/pools3/*.npz
    .venv/bin/python scripts/stability_report.py --bundles artifacts/stable-seed0 \\
        artifacts/stable-seed1 --ns 20,40,80,120,180
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from explainers.normlime import display_class_maps  # noqa: E402
from explainers.stability import as_displayed, first_per_label, pearson_per_class  # noqa: E402


def _r(wa, pa, wb, pb) -> dict[str, np.ndarray]:
    """Per-digit r of the class maps as displayed (the rendering rule's values)."""
    ma, mb = display_class_maps(wa, pa, 10), display_class_maps(wb, pb, 10)
    return {
        m: pearson_per_class(as_displayed(ma[m]), as_displayed(mb[m])) for m in ("normlime", "lime")
    }


def _digests(root: Path) -> np.ndarray:
    """Pixel digests of the bundle's local explanations (images.npz written by precompute)."""
    with np.load(root / "images.npz") as z:
        return z["lime_digest"]


def _n90(r: float, n: int) -> float:
    """Explanations per digit for r = 0.9 if r(n) = n / (n + c)."""
    return float("inf") if r <= 0 else 9 * n * (1 - r) / r


def pools_table(paths: list[str]) -> None:
    print("| sigma | samples N | K | n/digit | NormLIME r min / mean | LIME r min / mean |"
          " n for r_min=0.9 (NormLIME, LIME) |")
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        z = np.load(path)
        sigma = Path(path).stem.split("sigma")[-1] if "sigma" in Path(path).stem else "0.5"
        tags = sorted(
            {k[5:] for k in z.files if k.startswith("p0_w_")},
            key=lambda t: tuple(int(x) for x in t.split("_")[:2]),
        )
        for tag in tags:
            n_samples, k = tag.split("_")[:2]
            for n in (10, 20):
                ra, rb = first_per_label(z["p0_true"], n), first_per_label(z["p1_true"], n)
                r = _r(z[f"p0_w_{tag}"][ra], z["p0_pred"][ra], z[f"p1_w_{tag}"][rb],
                       z["p1_pred"][rb])
                extra = ""
                if n == 20:
                    extra = f"{_n90(r['normlime'].min(), n):.0f}, {_n90(r['lime'].min(), n):.0f}"
                print(
                    f"| {sigma} | {n_samples} | {k} | {n} | "
                    f"{r['normlime'].min():.2f} / {r['normlime'].mean():.2f} | "
                    f"{r['lime'].min():.2f} / {r['lime'].mean():.2f} | {extra} |"
                )


def _fit_c(ns, rs) -> float:
    """Least-squares c of r(n) = n / (n + c) through the measured (n, r) points."""
    from scipy.optimize import least_squares

    ns, rs = np.asarray(ns, float), np.asarray(rs, float)
    fit = least_squares(lambda c: ns / (ns + c[0]) - rs, x0=[50.0], bounds=(0, np.inf))
    return float(fit.x[0])


def pools_grid(paths: list[str], ns: list[int]) -> list[dict]:
    """Every fit setting of the pools along n: stability, usage spread, NormLIME-vs-LIME,
    R^2 and border share, plus the n that the fitted r(n) = n/(n+c) needs for r = 0.9."""
    from explainers.inspect import border_mask
    from explainers.normlime import class_usage_counts, usage_spread

    border = border_mask().ravel()
    rows = []
    print("| N | K | n/digit | NormLIME r min / mean | LIME r min / mean | median CV of "
          "abs(E_y) | NormLIME vs LIME r | mean R^2 | NormLIME border share |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        z = np.load(path)
        tags = sorted(
            {k[5:] for k in z.files if k.startswith("p0_w_")},
            key=lambda t: tuple(int(x) for x in t.split("_")[:2]),
        )
        for tag in tags:
            n_samples, k = (int(x) for x in tag.split("_")[:2])
            curve = {"normlime": [], "lime": []}
            for n in ns:
                ra, rb = first_per_label(z["p0_true"], n), first_per_label(z["p1_true"], n)
                wa, pa = z[f"p0_w_{tag}"][ra], z["p0_pred"][ra]
                wb, pb = z[f"p1_w_{tag}"][rb], z["p1_pred"][rb]
                r = _r(wa, pa, wb, pb)
                ma = display_class_maps(wa, pa, 10)
                shown = {m: as_displayed(ma[m]) for m in ("normlime", "lime")}
                cross = pearson_per_class(shown["normlime"], shown["lime"])
                cv = usage_spread(class_usage_counts(wa, pa, 10))
                share = (shown["normlime"] * border).sum(1) / shown["normlime"].sum(1)
                row = {
                    "n_samples": n_samples, "K": k, "per_class": n,
                    "normlime_min": float(r["normlime"].min()),
                    "normlime_mean": float(r["normlime"].mean()),
                    "lime_min": float(r["lime"].min()), "lime_mean": float(r["lime"].mean()),
                    "usage_cv_median": float(np.median(cv)),
                    "normlime_vs_lime_min": float(cross.min()),
                    "normlime_vs_lime_max": float(cross.max()),
                    "mean_r2": float(z[f"p0_r2_{tag}"][ra].mean()),
                    "normlime_border_share": float(share.mean()),
                }
                rows.append(row)
                for m in curve:
                    curve[m].append(row[f"{m}_min"])
                print(
                    f"| {n_samples} | {k} | {n} | {row['normlime_min']:.3f} / "
                    f"{row['normlime_mean']:.3f} | {row['lime_min']:.3f} / {row['lime_mean']:.3f}"
                    f" | {row['usage_cv_median']:.2f} | {row['normlime_vs_lime_min']:.2f}-"
                    f"{row['normlime_vs_lime_max']:.2f} | {row['mean_r2']:.3f} | "
                    f"{row['normlime_border_share']:.3f} |",
                    flush=True,
                )
            for m in curve:
                c = _fit_c(ns, curve[m])
                print(f"N={n_samples} K={k} {m}: worst digit fits r(n) = n/(n+{c:.0f}); "
                      f"r = 0.9 at n = {9 * c:.0f} per digit")
                rows.append({"n_samples": n_samples, "K": k, "method": m, "c": c,
                             "n_for_0.9": 9 * c})
    return rows


def bundles_table(a: str, b: str, ns: list[int]) -> None:
    za, zb = np.load(Path(a) / "local.npz"), np.load(Path(b) / "local.npz")
    if "weights" not in za.files or "weights" not in zb.files:
        raise SystemExit("both bundles need local.npz with weights (precompute --keep-local)")
    ma = json.loads((Path(a) / "manifest.json").read_text())
    per_class = ma["local_explanations"]["per_class"]
    wall = ma["local_explanations"]["wall_time_s"]
    da, db = _digests(Path(a)), _digests(Path(b))
    print(f"images shared by the two runs: {int(np.isin(da, db).sum())} of {len(da)}")
    print("| n/digit | NormLIME r min / mean | LIME r min / mean | LIME wall time (s) |")
    print("|---|---|---|---|")
    for n in ns:
        ra, rb = first_per_label(za["true_label"], n), first_per_label(zb["true_label"], n)
        r = _r(za["weights"][ra], za["pred_label"][ra], zb["weights"][rb], zb["pred_label"][rb])
        print(
            f"| {n} | {r['normlime'].min():.3f} / {r['normlime'].mean():.3f} | "
            f"{r['lime'].min():.3f} / {r['lime'].mean():.3f} | {wall * n / per_class:.0f} |"
        )
    r = _r(za["weights"], za["pred_label"], zb["weights"], zb["pred_label"])
    for m in ("normlime", "lime"):
        print(f"{m} per digit at n={per_class}: {np.round(r[m], 3).tolist()}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pools", nargs="*", default=[])
    ap.add_argument("--bundles", nargs=2, default=None)
    ap.add_argument("--ns", default="20,40,80,120,180")
    ap.add_argument("--grid", action="store_true", help="with --pools: the full grid along --ns")
    ap.add_argument("--json", default=None, help="with --grid: also write the rows here")
    args = ap.parse_args(argv)
    if args.pools and args.grid:
        rows = pools_grid(args.pools, [int(n) for n in args.ns.split(",")])
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    elif args.pools:
        pools_table(args.pools)
    if args.bundles:
        bundles_table(*args.bundles, [int(n) for n in args.ns.split(",")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
