"""Writing a design analysis to disk: summary.json, report.md, accuracy.png, tables.

Files in the output directory:

* ``summary.json``  participants, task, baseline, conditions, chance, ``accuracy_model``
  (the primary analysis), ``accuracy`` (each condition against chance), and for agreement
  ``agreement`` (the model on right and wrong predictions, mean confidence); non-finite
  numbers are written as null;
* ``report.md``     what a reader may conclude, in words, then the tables;
* ``accuracy.png``  each condition's accuracy with its interval, the chance level drawn;
* ``details.json``  settings, exclusions by reason, warnings;
* ``exclusions.csv`` one row per excluded participant with the reason;
* ``participants.csv`` the analysed participants: condition, test answers, accuracy.

The prose is in ``analysis/designs/templates/designs_report.md.j2``; numbers are formatted
here with the study report's helpers (``format_p``, ``display_name``) and
``analysis.words.count``, as in ``analysis/study/report.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from analysis.study.report import _figure, display_name, format_p, json_safe, method_colours
from analysis.templating import environment

from .pipeline import TARGET, DesignAnalysis
from .responses import REASONS

__all__ = ["render", "render_markdown", "summary_dict", "write_outputs"]

#: report.md lists at most this many excluded participants (exclusions.csv has them all)
EXCLUDED_SHOWN = 50


def render(name: str, /, **context) -> str:
    """Template ``name`` of ``analysis/designs/templates`` with ``context``."""
    return environment("analysis.designs").get_template(name).render(**context)


def summary_dict(analysis: DesignAnalysis) -> dict:
    sel = analysis.selection
    kept = sel.participants.loc[sel.participants["kept"]]
    per = kept["condition"].value_counts()
    out = {
        "task": analysis.task,
        "participants": {
            "total": sel.total,
            "kept": sel.kept,
            "excluded": sel.excluded,
            "kept_by_condition": {c: int(per.get(c, 0)) for c in analysis.conditions},
        },
        "conditions": list(analysis.conditions),
        "baseline": analysis.baseline,
        "chance": {"value": analysis.responses.chance, "source": analysis.responses.chance_source},
        "accuracy_model": analysis.model.as_summary(),
        "accuracy": analysis.accuracy,
        "conclusion": conclusions(analysis),
    }
    if analysis.task == "agreement":
        out["agreement"] = {
            "by_model_correct": {k: m.as_summary() for k, m in analysis.by_model_correct.items()},
            "confidence": analysis.confidence,
            "confidence_vs_baseline": analysis.confidence_vs_baseline,
            "over_reliance": over_reliance(analysis),
        }
    return json_safe(out)


def details_dict(analysis: DesignAnalysis) -> dict:
    sel = analysis.selection
    return json_safe(
        {
            "source": analysis.responses.source,
            "settings": {
                "task": analysis.task,
                "baseline": analysis.baseline,
                "conditions": list(analysis.conditions),
                "min_checks": sel.min_checks,
                "attention_checks": sel.attention_checks,
                "test_answers": sel.test_answers,
                "include_incomplete": sel.include_incomplete,
                "speeder_ms": sel.speeder_ms,
                "alpha": analysis.alpha,
                "chance": analysis.responses.chance,
                "chance_source": analysis.responses.chance_source,
            },
            "excluded_by_reason": sel.excluded_by_reason(),
            "warnings": analysis.warnings,
        }
    )


def conclusions(analysis: DesignAnalysis) -> dict:
    """Which conditions differed from the baseline (Holm-adjusted Wald p < alpha), and in
    which direction; the basis of the report's sentences."""
    model = analysis.model
    if not model.fitted:
        return {"fitted": False, "note": model.note, "better": [], "worse": [], "none_differ": None}
    better = [c for c in model.others if model.p_holm[c] < analysis.alpha and model.coef[c] > 0]
    worse = [c for c in model.others if model.p_holm[c] < analysis.alpha and model.coef[c] < 0]
    return {
        "fitted": True,
        "better": better,
        "worse": worse,
        "none_differ": not better and not worse,
        "rule": "Holm-adjusted Wald p < alpha",
    }


def over_reliance(analysis: DesignAnalysis) -> dict[str, dict]:
    """Agreement: per condition, whether showing it lowered the share of wrong predictions
    that were caught (the model on wrong predictions: Holm p < alpha, negative) and whether
    it raised confidence in them (Welch p < alpha, positive)."""
    wrong = analysis.by_model_correct.get("model_wrong")
    rows = {r["condition"]: r for r in analysis.confidence_vs_baseline
            if r["predictions"] == "model_wrong"}  # fmt: skip
    out = {}
    for c in analysis.model.others:
        fewer = bool(wrong is not None and wrong.fitted and wrong.p_holm[c] < analysis.alpha
                     and wrong.coef[c] < 0)  # fmt: skip
        row = rows.get(c, {})
        higher = bool(row.get("p") is not None and row["p"] < analysis.alpha
                      and row["difference"] > 0)  # fmt: skip
        out[c] = {"fewer_wrong_predictions_caught": fewer, "higher_confidence_in_wrong": higher}
    return out


def write_outputs(analysis: DesignAnalysis, out_dir: str | Path) -> dict[str, Path]:
    """Write every output file into ``out_dir`` (created if needed); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = ("summary.json", "details.json", "report.md", "accuracy.png", "exclusions.csv",
             "participants.csv")  # fmt: skip
    paths = {name: out / name for name in names}
    paths["summary.json"].write_text(
        json.dumps(summary_dict(analysis), indent=2, allow_nan=False) + "\n"
    )
    paths["details.json"].write_text(
        json.dumps(details_dict(analysis), indent=2, allow_nan=False) + "\n"
    )
    per = analysis.selection.participants
    per.loc[~per["kept"]].drop(columns=["kept"]).to_csv(paths["exclusions.csv"])
    test = analysis.selection.test
    table = test.groupby("participant").agg(
        condition=("condition", "first"), answers=("correct", "size"), correct=("correct", "sum")
    )
    table["accuracy"] = table["correct"] / table["answers"]
    table.to_csv(paths["participants.csv"], float_format="%.17g")
    plot_accuracy(analysis, paths["accuracy.png"])
    paths["report.md"].write_text(render_markdown(analysis))
    return paths


def plot_accuracy(analysis: DesignAnalysis, path: Path) -> None:
    """Mean participant accuracy per condition with its 95% interval; chance dashed."""
    conditions = analysis.conditions
    colours = method_colours(conditions)
    colours[analysis.baseline] = "0.5"
    fig = _figure(5.0, 3.2)
    ax = fig.add_subplot()
    for x, row in enumerate(analysis.accuracy):
        if row["mean"] is None:
            continue
        lo, hi = row["ci"] or (row["mean"], row["mean"])
        ax.errorbar(x, row["mean"], yerr=[[row["mean"] - lo], [hi - row["mean"]]], fmt="o",
                    color=colours[row["condition"]], capsize=4, markersize=6)  # fmt: skip
    ax.axhline(analysis.responses.chance, color="0.5", ls="--", lw=0.8)
    ax.text(len(conditions) - 0.5, analysis.responses.chance, " chance", va="bottom",
            ha="right", fontsize=7, color="0.4")  # fmt: skip
    ax.set_xticks(range(len(conditions)), [_label(c) for c in conditions])
    ax.set_xlim(-0.5, len(conditions) - 0.5)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share correct (participant means)")
    ax.set_title(f"{analysis.task.capitalize()} task: accuracy by condition (95% CI)", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    fig.savefig(path, metadata={"Software": None})


def _label(condition: str) -> str:
    return "no explanation" if condition == "none" else display_name(condition)


def _num(x, digits: int = 2) -> str:
    if x is None or not np.isfinite(x):
        return "undefined"
    return f"{x:.{digits}f}"


def _pct(x) -> str:
    return "undefined" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def render_markdown(analysis: DesignAnalysis) -> str:
    """report.md: the numbers formatted here, the prose in designs_report.md.j2."""
    sel = analysis.selection
    per = sel.participants
    excluded = per.loc[~per["kept"]]
    kept = per.loc[per["kept"]]
    return render(
        "designs_report.md.j2",
        name=_label,
        Name=lambda c: _label(c)[:1].upper() + _label(c)[1:],
        answers={row["condition"]: row["answers"] for row in analysis.accuracy},
        num=_num,
        pct=_pct,
        p=format_p,
        exp=lambda x: _num(float(np.exp(x)) if x is not None else None),
        task=analysis.task,
        target=TARGET[analysis.task],
        source=analysis.responses.source,
        conditions=analysis.conditions,
        baseline=analysis.baseline,
        chance=analysis.responses.chance,
        chance_source=analysis.responses.chance_source,
        sel=sel,
        reasons=REASONS,
        by_reason=sel.excluded_by_reason(),
        kept_by_condition={c: int((kept["condition"] == c).sum()) for c in analysis.conditions},
        excluded=[
            {"id": str(pid).replace("|", "\\|"), "reason": r.reason, "detail": r.detail}
            for pid, r in excluded.head(EXCLUDED_SHOWN).iterrows()
        ],
        n_excluded=len(excluded),
        warnings=analysis.warnings,
        model=analysis.model,
        accuracy=analysis.accuracy,
        alpha=analysis.alpha,
        verdict=conclusions(analysis),
        by_model_correct=analysis.by_model_correct,
        confidence=analysis.confidence,
        versus=analysis.confidence_vs_baseline,
        reliance=over_reliance(analysis) if analysis.task == "agreement" else {},
    )
