"""An evaluation's numbers with their uncertainty: a seeded bootstrap over images.

Every (level, method, metric) value is the mean over the sampled images; its interval is
the 2.5th-97.5th percentile of the means of ``bootstrap`` resamples of the images (the
resampled means are kept in ``resamples.npz``).  The resamples are paired: one draw of
image indices serves every method, so the rank table (per level and metric, the methods
ordered by their resampled means) says in what share of resamples each method holds each
rank.  ``road_gap`` (LeRF minus MoRF, per image) and the
MoRF/LeRF consistency (Spearman's rho between the methods' order by MoRF and their order by
LeRF, Rong et al.'s check that the two removal orders agree) are computed on the same
resamples.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

__all__ = ["summarise", "write_outputs", "rank_shares"]


def _table(records: list[dict]) -> dict[tuple[str, str, str], np.ndarray]:
    """(level, method, metric) -> per-image values."""
    out = {}
    for r in records:
        for metric, values in r["values"].items():
            out[(r["level"], r["method"], metric)] = np.asarray(values, dtype=np.float64)
    for (level, method, metric), values in list(out.items()):
        if metric == "road_morf":
            out[(level, method, "road_gap")] = out[(level, method, "road_lerf")] - values
    return out


def rank_shares(draws: np.ndarray, better: str) -> np.ndarray:
    """(B, K) resampled means of K methods -> (K, K) share of resamples with method k at
    rank r (rank 1 = best; ties share the better rank)."""
    from scipy.stats import rankdata

    signed = draws if better == "lower" else -draws
    ranks = rankdata(signed, axis=1, method="min").astype(int) - 1
    k = draws.shape[1]
    shares = np.zeros((k, k))
    for j in range(k):
        shares[j] = np.bincount(ranks[:, j], minlength=k)[:k] / len(draws)
    return shares


def summarise(records: list[dict], settings, metric_dirs: dict[str, str]) -> dict:
    table = _table(records)
    draws = {}  # one draw per sample size, shared by every method (paired resamples)

    def resample(values: np.ndarray) -> np.ndarray:
        n = len(values)
        if n not in draws:
            rng = np.random.default_rng([settings.seed, 0xB007, n])
            draws[n] = rng.integers(0, n, size=(settings.bootstrap, n))
        return values[draws[n]].mean(axis=1)

    rows, ranks, resampled = [], [], {}
    for (level, method, metric), values in sorted(table.items()):
        means = resample(values)
        resampled[(level, method, metric)] = means
        lo, hi = np.percentile(means, [2.5, 97.5])
        rows.append({
            "level": level, "method": method, "metric": metric, "value": float(values.mean()),
            "ci_low": float(lo), "ci_high": float(hi), "better": metric_dirs[metric],
            "n_images": int(len(values)),
        })  # fmt: skip
    for level in sorted({key[0] for key in table}):
        for metric in metric_dirs:
            names = sorted(m for (lv, m, mt) in table if lv == level and mt == metric)
            if len(names) < 2:
                continue
            stacked = np.stack([resampled[(level, m, metric)] for m in names], axis=1)
            point = np.array([table[(level, m, metric)].mean() for m in names])[None, :]
            shares = rank_shares(stacked, metric_dirs[metric])
            point_rank = rank_shares(point, metric_dirs[metric]).argmax(axis=1)
            for j, m in enumerate(names):
                ranks.append({
                    "level": level, "metric": metric, "method": m,
                    "rank": int(point_rank[j]) + 1,
                    "share_at_rank": float(shares[j, point_rank[j]]),
                    "shares": [round(float(s), 4) for s in shares[j]],
                })  # fmt: skip
    return {"rows": rows, "ranks": ranks, "consistency": _consistency(table, resampled),
            "resampled": resampled}  # fmt: skip


def _consistency(table, resampled) -> list[dict]:
    """Per level: do the methods' orders by MoRF (lower better) and by LeRF (higher
    better) agree?  Spearman's rho of the two orders, point and bootstrap interval."""
    from .compare import spearman

    out = []
    for level in sorted({key[0] for key in table}):
        names = sorted(m for (lv, m, mt) in table if lv == level and mt == "road_morf")
        if len(names) < 3:
            continue
        morf = np.stack([resampled[(level, m, "road_morf")] for m in names], axis=1)
        lerf = np.stack([resampled[(level, m, "road_lerf")] for m in names], axis=1)
        # a good method has a low MoRF and a high LeRF: agreement is rho(-MoRF, LeRF) > 0
        rhos = np.array([spearman(-a, b) for a, b in zip(morf, lerf, strict=True)])
        point = spearman(
            [-table[(level, m, "road_morf")].mean() for m in names],
            [table[(level, m, "road_lerf")].mean() for m in names],
        )
        lo, hi = np.percentile(rhos, [2.5, 97.5]) if rhos.size else (np.nan, np.nan)
        out.append({"level": level, "methods": names, "rho": float(point),
                    "ci_low": float(lo), "ci_high": float(hi)})  # fmt: skip
    return out


def write_outputs(out_dir: Path, records: list[dict], summary: dict, meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    _csv(out_dir / "evaluation.csv", summary["rows"])
    ranks = [{**r, "shares": " ".join(f"{v:.3f}" for v in r["shares"])} for r in summary["ranks"]]
    _csv(out_dir / "ranks.csv", ranks)
    curves = []
    for r in records:
        for name, values in r.get("curves", {}).items():
            for i, v in enumerate(values):
                curves.append({"level": r["level"], "method": r["method"], "curve": name,
                               "point": i, "value": v})  # fmt: skip
    _csv(out_dir / "curves.csv", curves)
    blob = {**meta, "consistency": summary["consistency"], "rows": summary["rows"],
            "ranks": summary["ranks"]}  # fmt: skip
    (out_dir / "evaluation.json").write_text(json.dumps(blob, indent=2, sort_keys=True) + "\n")
    (out_dir / "evaluation.md").write_text(markdown(summary, meta))
    # the resampled means, for comparisons with the human study (analysis.evaluate.compare)
    np.savez_compressed(
        out_dir / "resamples.npz",
        **{"|".join(key): values for key, values in summary["resampled"].items()},
    )


def _csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        if not rows:
            return
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def markdown(summary: dict, meta: dict) -> str:
    s = meta["settings"]
    lines = [
        f"# Numerical evaluation: {meta['project']}",
        "",
        f"{len(meta['images'])} test images (stratified by label, seed {s['seed']}); the model "
        f"is right on {meta['accuracy_on_sample']:.1%} of them. Features: {meta['features']} "
        f"({meta['n_features']}). Intervals: 95% bootstrap over images ({s['bootstrap']} "
        "resamples). Rank share: the share of resamples in which the method holds its rank.",
        "",
    ]
    ranks = {(r["level"], r["metric"], r["method"]): r for r in summary["ranks"]}
    for level in ("per-image", "class-level"):
        rows = [r for r in summary["rows"] if r["level"] == level]
        if not rows:
            continue
        lines += [f"## {level}", "", "| metric | better | method | value | 95% CI | rank (share) |",
                  "|---|---|---|---:|---|---|"]  # fmt: skip
        for r in sorted(rows, key=lambda r: (r["metric"], r["method"])):
            rk = ranks.get((level, r["metric"], r["method"]))
            rank = f"{rk['rank']} ({rk['share_at_rank']:.0%})" if rk else ""
            lines.append(
                f"| {r['metric']} | {r['better']} | {r['method']} | {r['value']:.3f} | "
                f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {rank} |"
            )
        lines.append("")
    for c in summary["consistency"]:
        lines.append(
            f"ROAD MoRF/LeRF consistency ({c['level']}): Spearman's rho between the methods' "
            f"order by MoRF and their order by LeRF is {c['rho']:.2f} [{c['ci_low']:.2f}, "
            f"{c['ci_high']:.2f}] over {len(c['methods'])} methods (1: the two removal orders "
            "rank the methods alike; 0: unrelated; -1: reversed)."
        )
    return "\n".join(lines) + "\n"
