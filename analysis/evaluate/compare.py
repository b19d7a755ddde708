"""What people chose next to what the metrics say: do the two orders of the methods agree?

For every class-level metric of an evaluation (the human study shows class maps) and the
methods both have, Spearman's rho between the human estimates (the choice model's
log-odds: a more chosen method is "better") and the metric's values turned so that higher
is better.  Its interval pairs the i-th cluster-bootstrap resample of the human study with
the i-th image-bootstrap resample of the evaluation: the two samples are independent, so
every source of uncertainty enters once.  With fewer than three common methods an order
says too little, and no row is made.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["CompareError", "human_vs_metrics", "markdown_rows", "spearman"]

_EXCLUDED = ("randomisation_spearman",)  # a per-image sanity check, not a class-level order


class CompareError(ValueError):
    """An evaluation folder that cannot be compared (one readable line)."""


def _load(evaluation_dir: Path) -> tuple[dict, dict]:
    path = Path(evaluation_dir) / "evaluation.json"
    draws = Path(evaluation_dir) / "resamples.npz"
    if not path.is_file() or not draws.is_file():
        raise CompareError(
            f"--evaluation {evaluation_dir} holds no finished `normlime evaluate` output "
            "(evaluation.json and resamples.npz)"
        )
    with np.load(draws) as npz:
        resampled = {tuple(k.split("|")): npz[k] for k in npz.files}
    return json.loads(path.read_text()), resampled


def spearman(a, b) -> float:
    """rho, or 0 where one side is constant (tied methods say nothing about an order)."""
    import warnings

    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = spearmanr(a, b).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def human_vs_metrics(choice_model, evaluation_dir: str | Path) -> dict:
    """Rows ``{metric, methods, rho, ci, share_positive}`` and a note on what was compared."""
    blob, resampled = _load(Path(evaluation_dir))
    levels = {r["level"] for r in blob["rows"]}
    if "class-level" not in levels:
        raise CompareError(
            f"--evaluation {evaluation_dir} has no class-level rows (evaluate with "
            "--levels class-level): the human study compares class maps"
        )
    evaluated = {r["method"] for r in blob["rows"] if r["level"] == "class-level"}
    methods = [m for m in choice_model.methods if m in evaluated]
    out = {"project": blob.get("project"), "methods": methods, "rows": []}
    if len(methods) < 3:
        out["note"] = (
            f"only {len(methods)} method(s) are both in the study and the evaluation: an "
            "order of fewer than three says too little"
        )
        return out
    human = np.array([choice_model.coef[m] for m in methods])
    idx = [choice_model.methods.index(m) for m in methods]
    human_draws = choice_model.coef_draws[:, idx] if choice_model.coef_draws is not None else None
    better = {r["metric"]: r["better"] for r in blob["rows"]}
    for metric in sorted(better):
        if metric in _EXCLUDED:
            continue
        sign = 1.0 if better[metric] == "higher" else -1.0
        point = sign * np.array([_value(blob, m, metric) for m in methods])
        draws = sign * np.stack([resampled[("class-level", m, metric)] for m in methods], axis=1)
        rho = spearman(human, point)
        row = {"metric": metric, "rho": rho, "better": better[metric]}
        if human_draws is not None and len(human_draws):
            n = min(len(human_draws), len(draws))
            rhos = np.array([spearman(human_draws[i], draws[i]) for i in range(n)])
            lo, hi = np.percentile(rhos, [2.5, 97.5])
            row |= {"ci": [float(lo), float(hi)], "share_positive": float((rhos > 0).mean())}
        out["rows"].append(row)
    return out


def _value(blob: dict, method: str, metric: str) -> float:
    return next(
        r["value"] for r in blob["rows"]
        if (r["level"], r["method"], r["metric"]) == ("class-level", method, metric)
    )  # fmt: skip


def markdown_rows(result: dict) -> list[str]:
    """The report's section (a list of lines)."""
    lines = ["## What people chose and what the metrics say", ""]
    if result.get("note"):
        return lines + [f"Not compared: {result['note']}.", ""]
    lines += [
        f"Methods: {', '.join(result['methods'])} (class maps, as shown to people). Spearman's "
        "rho between the choice model's log-odds and each metric (turned so that higher is "
        "better); the interval pairs the study's cluster bootstrap with the evaluation's "
        "image bootstrap. rho near 1: the metric orders the methods as people chose them; "
        "near -1: the reverse.",
        "",
        "| metric | rho | 95% CI | share of resamples with rho > 0 |",
        "|---|---:|---|---:|",
    ]
    for r in result["rows"]:
        ci = f"[{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]" if "ci" in r else "n/a"
        share = f"{r['share_positive']:.0%}" if "share_positive" in r else "n/a"
        lines.append(f"| {r['metric']} | {r['rho']:.2f} | {ci} | {share} |")
    agree = [r["metric"] for r in result["rows"] if r.get("ci", [0])[0] > 0]
    disagree = [r["metric"] for r in result["rows"] if r.get("ci", [0, 0])[1] < 0]
    lines += [
        "",
        "The orders agree, beyond the uncertainty, for: " + (", ".join(agree) or "no metric")
        + "; they are reversed for: " + (", ".join(disagree) or "no metric")
        + ". Every other metric's interval holds 0: neither agreement nor disagreement is "
        "shown.",
        "",
    ]
    return lines
