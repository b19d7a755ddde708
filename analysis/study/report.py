"""Writing an analysis to disk: summary.json, report.md, plots and tables.

Files in the output directory:

* ``summary.json``   participants, votes, choice_model (the primary analysis; null with
  ``choice_model_note`` when the export has no screen order), anova and tukey (the
  paper's analysis, reproduced), rm_anova, friedman, wilcoxon, position_bias, robustness
  (non-finite numbers are written as null);
* ``report.md``      a report that can be pasted into a paper, with the two figures;
* ``votes.png``      bar chart of votes per method;
* ``choice_model.png`` the primary estimates with their bootstrap intervals;
* ``digits.png``     each digit's vote shares per method;
* ``proportions.png`` per-participant vote proportions per method;
* ``details.json``   everything else: settings, exclusions by reason, warnings,
  descriptives, votes per digit;
* ``exclusions.csv`` one row per excluded participant with the reason;
* ``proportions.csv`` the analysed observations (one row per kept participant).

Plots use matplotlib's object API on an Agg canvas (no global backend, no display).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..evaluate.compare import markdown_rows
from ..templating import render
from .attention import REASONS
from .pipeline import Analysis
from .votes import is_replication

__all__ = [
    "COLOURS",
    "DISPLAY",
    "PALETTE",
    "display_name",
    "method_colours",
    "TUKEY_P_RESOLUTION",
    "format_p",
    "format_tukey_p",
    "summary_dict",
    "details_dict",
    "write_outputs",
]

#: how the methods are named in prose and figures
DISPLAY = {"normlime": "NormLIME", "lime": "LIME", "smoothgrad": "SmoothGrad", "vargrad": "VarGrad"}
COLOURS = {"normlime": "#d62728", "lime": "#1f77b4", "smoothgrad": "#2ca02c", "vargrad": "#9467bd"}
#: colours of the methods the paper did not have, by their position among them (none of
#: COLOURS, so every method of a study of up to ten keeps its own)
PALETTE = ("#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
#: at most this many participants are drawn as points per method (all of them are analysed)
MAX_POINTS = 2000
#: report.md lists at most this many excluded participants (exclusions.csv has them all)
EXCLUDED_SHOWN = 50
#: statsmodels takes Tukey p-values from scipy's studentized-range integral, which bottoms
#: out at a numerical floor (about 2e-13 to 3e-11 depending on df) instead of going to 0;
#: below this value the report prints "< 1e-09" and summary.json keeps the raw number
TUKEY_P_RESOLUTION = 1e-9
#: seed of the point subsample and the horizontal jitter in proportions.png
PLOT_SEED = 0


def display_name(method: str) -> str:
    """A method's name in prose and figures (the name itself when it is not the paper's)."""
    return DISPLAY.get(method, method)


def method_colours(methods) -> dict[str, str]:
    """The paper's colours for its methods; the others take PALETTE's in their order, so
    the same study always gets the same colours."""
    others = [m for m in methods if m not in COLOURS]
    return {m: COLOURS.get(m) or PALETTE[others.index(m) % len(PALETTE)] for m in methods}


def power_axis(ax, ns) -> None:
    """A power curve's axes: power on [0, 1]; sample sizes on a log axis with plain
    numbers when the search spans more than 20x (it reads better)."""
    if ns and max(ns) / min(ns) > 20:
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(0, 1.02)


def json_safe(value):
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_p(p: float | None) -> str:
    """A p-value for people: three decimals from 0.001 up ("0.119"), three significant
    digits below ("3.47e-12"); the full value is in summary.json."""
    if p is None or not np.isfinite(p):
        return "undefined"
    if p == 0:
        return "0 (underflows double precision, < 2.2e-308)"
    if p >= 0.001:
        return f"{p:.3f}"
    return f"{p:.2e}"


def format_tukey_p(p: float | None) -> str:
    """A Tukey p-value, or "< 1e-09" where the studentized-range integral is not accurate."""
    if p is not None and np.isfinite(p) and p < TUKEY_P_RESOLUTION:
        return f"< {TUKEY_P_RESOLUTION:.0e}"
    return format_p(p)


def summary_dict(analysis: Analysis) -> dict:
    sel = analysis.selection
    anova = analysis.anova
    model = analysis.choice_model
    return json_safe(
        {
            "participants": {"total": sel.total, "kept": sel.kept, "excluded": sel.excluded},
            "votes": analysis.vote_totals,
            "choice_model": model.as_summary() if model is not None else None,
            "choice_model_note": analysis.choice_note or None,
            "anova": {
                "F": anova.F,
                "p": anova.p,
                "df_between": anova.df_between,
                "df_within": anova.df_within,
                "eta_squared": anova.eta_squared,
            },
            "tukey": analysis.tukey,
            "rm_anova": analysis.rm_anova,
            "friedman": analysis.friedman,
            "wilcoxon": analysis.wilcoxon,
            "position_bias": analysis.position_bias,
            "robustness": analysis.robustness,
        }
        # only with --evaluation
        | ({"human_vs_metrics": analysis.human_vs_metrics} if analysis.human_vs_metrics else {})
    )


def details_dict(analysis: Analysis) -> dict:
    sel = analysis.selection
    design = analysis.votes.design
    desc = analysis.descriptives
    return json_safe(
        {
            "source": analysis.votes.source,
            "settings": {
                "min_checks": sel.min_checks,
                "include_incomplete": sel.include_incomplete,
                "real_questions": design.real_questions,
                "attention_checks": design.attention_checks,
                "classes": design.classes,
                "design_source": analysis.votes.design_source,
                "methods": list(analysis.methods),
                "methods_source": analysis.votes.methods_source,
                "alpha": analysis.alpha,
                "speeder_ms": sel.speeder_ms,
            },
            "choice_model_cross_check": (
                analysis.choice_model.cross_check if analysis.choice_model else None
            ),
            "excluded_by_reason": sel.excluded_by_reason(),
            "kept_incomplete": int(
                (sel.participants["kept"] & ~sel.participants["complete"]).sum()
            ),
            "warnings": analysis.warnings,
            "tukey_p_resolution": TUKEY_P_RESOLUTION,
            "anova_sums_of_squares": {
                "between": analysis.anova.ss_between,
                "within": analysis.anova.ss_within,
            },
            "proportions": {
                m: {k: float(desc.loc[m, k]) for k in desc.columns} for m in analysis.methods
            },
            "votes_by_digit": {
                str(d): {m: int(analysis.by_digit.loc[d, m]) for m in analysis.methods}
                for d in analysis.by_digit.index
            },
        }
    )


def write_outputs(analysis: Analysis, out_dir: str | Path) -> dict[str, Path]:
    """Write every output file into ``out_dir`` (created if needed); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        name: out / name
        for name in (
            "summary.json",
            "details.json",
            "report.md",
            "votes.png",
            "proportions.png",
            "choice_model.png",
            "digits.png",
            "exclusions.csv",
            "proportions.csv",
        )
    }
    paths["summary.json"].write_text(
        json.dumps(summary_dict(analysis), indent=2, allow_nan=False) + "\n"
    )
    paths["details.json"].write_text(
        json.dumps(details_dict(analysis), indent=2, allow_nan=False) + "\n"
    )
    participants = analysis.selection.participants
    excluded = participants.loc[~participants["kept"]]
    excluded.drop(columns=["kept"]).to_csv(paths["exclusions.csv"])
    analysis.counts.add_prefix("votes_").join(analysis.props).to_csv(
        paths["proportions.csv"], float_format="%.17g"
    )
    plot_votes(analysis, paths["votes.png"])
    plot_proportions(analysis, paths["proportions.png"])
    plot_choice_model(analysis, paths["choice_model.png"])
    plot_digits(analysis, paths["digits.png"])
    paths["report.md"].write_text(render_markdown(analysis))
    return paths


# ---------------------------------------------------------------------------- figures


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_votes(analysis: Analysis, path: Path) -> None:
    colours = method_colours(analysis.methods)
    totals = analysis.vote_totals
    fig = _figure(5.0, 3.4)
    ax = fig.add_subplot()
    bars = ax.bar(
        [display_name(m) for m in analysis.methods],
        [totals[m] for m in analysis.methods],
        color=[colours[m] for m in analysis.methods],
    )
    ax.bar_label(bars, labels=[str(totals[m]) for m in analysis.methods], padding=2)
    ax.set_ylabel("votes")
    ax.set_title(f"Votes per method ({analysis.selection.kept} participants)")
    ax.margins(y=0.12)
    ax.spines[["top", "right"]].set_visible(False)
    fig.savefig(path, metadata={"Software": None})


def plot_proportions(analysis: Analysis, path: Path) -> None:
    colours = method_colours(analysis.methods)
    props = analysis.props
    desc = analysis.descriptives
    rng = np.random.default_rng(PLOT_SEED)
    n = len(props)
    shown = np.sort(rng.choice(n, size=MAX_POINTS, replace=False)) if n > MAX_POINTS else None
    fig = _figure(5.6, 3.8)
    ax = fig.add_subplot()
    positions = np.arange(len(analysis.methods))
    data = [props[m].to_numpy() for m in analysis.methods]
    ax.boxplot(
        data,
        positions=positions,
        widths=0.5,
        showfliers=False,
        medianprops={"color": "black"},
        boxprops={"color": "0.4"},
        whiskerprops={"color": "0.4"},
        capprops={"color": "0.4"},
    )
    for x, m in zip(positions, analysis.methods, strict=True):
        y = data[x] if shown is None else data[x][shown]
        jitter = rng.uniform(-0.18, 0.18, size=y.size)
        ax.scatter(x + jitter, y, s=6, alpha=0.35, color=colours[m], linewidths=0)
        ax.errorbar(
            x + 0.32,
            desc.loc[m, "mean"],
            yerr=[
                [desc.loc[m, "mean"] - desc.loc[m, "ci_low"]],
                [desc.loc[m, "ci_high"] - desc.loc[m, "mean"]],
            ],
            fmt="D",
            color="black",
            markersize=4,
            capsize=3,
        )
    ax.set_xticks(positions, [display_name(m) for m in analysis.methods])
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("share of the participant's votes")
    note = f"; {MAX_POINTS} of {n} drawn" if shown is not None else ""
    ax.set_title(f"Per-participant vote proportions (n = {n}{note})", fontsize=10)
    ax.text(
        0.99,
        0.98,
        "box: quartiles, median\n\u25c6 mean with 95% CI",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=7,
        color="0.3",
    )
    ax.spines[["top", "right"]].set_visible(False)
    fig.savefig(path, metadata={"Software": None})


def plot_choice_model(analysis: Analysis, path: Path) -> None:
    """Log-odds of each method against the reference, with the bootstrap intervals."""
    colours = method_colours(analysis.methods)
    fig = _figure(5.0, 3.0)
    ax = fig.add_subplot()
    model = analysis.choice_model
    if model is None:
        ax.text(
            0.5,
            0.5,
            "no choice model:\n" + analysis.choice_note,
            ha="center",
            va="center",
            wrap=True,
            transform=ax.transAxes,
        )
        ax.set_axis_off()
    else:
        y = np.arange(len(analysis.methods))[::-1]
        for yi, m in zip(y, analysis.methods, strict=True):
            lo, hi = model.ci[m]
            ax.plot([lo, hi], [yi, yi], color=colours[m], lw=2)
            ax.plot(model.coef[m], yi, "o", color=colours[m])
        ax.axvline(0, color="0.6", lw=0.8, ls="--")
        ax.set_yticks(y, [display_name(m) for m in analysis.methods])
        ax.set_xlabel(f"log-odds of being chosen vs {display_name(model.reference)}")
        ax.set_title(
            f"Primary analysis: conditional logit ({model.bootstrap['level']:.0%} cluster-"
            f"bootstrap CI)",
            fontsize=9,
        )
        ax.spines[["top", "right"]].set_visible(False)
    fig.savefig(path, metadata={"Software": None})


def _digit_shares(by_digit):
    """Each digit's votes as shares of that digit's votes (NaN for a digit never asked)."""
    return by_digit.div(by_digit.sum(axis=1).replace(0, np.nan), axis=0)


def plot_digits(analysis: Analysis, path: Path) -> None:
    """Each digit's share of the votes per method (the per-digit breakdown)."""
    colours = method_colours(analysis.methods)
    shares = _digit_shares(analysis.by_digit)
    fig = _figure(6.0, 3.4)
    ax = fig.add_subplot()
    digits = [str(d) for d in shares.index]
    for m in analysis.methods:
        ax.plot(digits, shares[m].to_numpy(), "o-", color=colours[m], label=display_name(m))
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"{_item(analysis)} asked")
    ax.set_ylabel("share of the votes")
    ax.set_title(f"Votes by {_item(analysis)}", fontsize=10)
    ax.legend(fontsize=7, ncols=4, loc="upper center", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.savefig(path, metadata={"Software": None})


def plot_power(result: dict, path: Path) -> None:
    """Power against kept participants for the contrast and the omnibus test."""
    fig = _figure(5.4, 3.4)
    ax = fig.add_subplot()
    for label, curve, colour in (
        (f"contrast {result['contrast']}", result["curve"], "#d62728"),
        ("omnibus", result["omnibus"]["curve"], "#1f77b4"),
    ):
        points = [(c["n"], c["power"]) for c in curve if c["power"] is not None]
        if points:
            ax.plot(*zip(*points, strict=True), "o-", ms=3, color=colour, label=label)
    ax.axhline(result["power"], color="0.5", ls="--", lw=0.8)
    ax.axhline(result["alpha"], color="0.7", ls=":", lw=0.8)
    ns = [c["n"] for c in result["curve"]]
    power_axis(ax, ns)
    ax.set_xlabel("kept participants")
    ax.set_ylabel("power")
    ax.set_title(
        f"Power by simulation ({result['simulations']} studies per point, seed {result['seed']})",
        fontsize=9,
    )
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.savefig(path, metadata={"Software": None})


# ---------------------------------------------------------------------------- markdown


def _num(x: float, digits: int = 4) -> str:
    if x is None or not np.isfinite(x):
        return "undefined"
    return f"{x:.{digits}f}"


def _stat(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "undefined"
    return f"{x:.2f}" if abs(x) < 1e5 else f"{x:.4g}"


def _cell(text: object) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(analysis: Analysis) -> str:
    """report.md: the numbers computed and formatted here, the prose and the layout in
    ``analysis/templates/study_report.md.j2``."""
    sel = analysis.selection
    totals = analysis.vote_totals
    n_votes = sum(totals.values())
    model = analysis.choice_model
    k = len(analysis.methods)
    excluded = sel.participants.loc[~sel.participants["kept"]]
    shares = _digit_shares(analysis.by_digit)
    return render(
        "study_report.md.j2",
        # Python's formatting of the numbers
        display=display_name,
        num=_num,
        stat=_stat,
        p=format_p,
        tukey_p=format_tukey_p,
        word=_word,
        fmt=format,
        # the numbers
        comparison=(
            "\n".join(markdown_rows(analysis.human_vs_metrics))
            if analysis.human_vs_metrics
            else ""
        ),
        warnings=analysis.warnings,
        source=analysis.votes.source,
        methods=analysis.methods,
        methods_source=analysis.votes.methods_source,
        design=analysis.votes.design,
        design_source=analysis.votes.design_source,
        sel=sel,
        reasons=REASONS,
        by_reason=sel.excluded_by_reason(),
        excluded=[
            {"id": _cell(pid), "reason": r.reason, "detail": r.detail}
            for pid, r in excluded.head(EXCLUDED_SHOWN).iterrows()
        ],
        n_excluded=len(excluded),
        totals=totals,
        order=sorted(analysis.methods, key=lambda m: -totals[m]),
        vote_share={m: totals[m] / n_votes for m in analysis.methods},
        desc={m: analysis.descriptives.loc[m].to_dict() for m in analysis.methods},
        model=model,
        choice_note=analysis.choice_note,
        level=f"{model.bootstrap['level']:.0%}" if model is not None else None,
        odds_ratios=(
            {m: float(np.exp(c)) for m, c in model.coef.items()} if model is not None else {}
        ),
        anova=analysis.anova,
        n_observations=sel.kept * k,
        tukey=analysis.tukey,
        tukey_p_resolution=TUKEY_P_RESOLUTION,
        alpha=analysis.alpha,
        rm=analysis.rm_anova,
        fr=analysis.friedman,
        wilcoxon=analysis.wilcoxon,
        n_holm_rejected=sum(1 for r in analysis.wilcoxon if r["reject"]),
        n_pairs=k * (k - 1) // 2,
        position_bias=analysis.position_bias,
        robustness=analysis.robustness,
        item=_item(analysis),
        by_digit=[
            {
                "digit": str(d),
                "votes": {m: int(analysis.by_digit.loc[d, m]) for m in analysis.methods},
                "share": {m: shares.loc[d, m] for m in analysis.methods},
            }
            for d in analysis.by_digit.index
        ],
    )


_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _item(analysis: Analysis) -> str:
    """What the ``digit`` column holds: MNIST digits in the replication, else classes."""
    return "digit" if is_replication(analysis.methods) else "class"


def _word(n: int) -> str:
    return _WORDS[n] if 0 <= n < len(_WORDS) else str(n)
