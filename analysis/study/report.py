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


def _clean(value):
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_p(p: float | None) -> str:
    """A p-value with all its significant digits in scientific notation."""
    if p is None or not np.isfinite(p):
        return "undefined"
    if p == 0:
        return "0 (underflows double precision, < 2.2e-308)"
    return np.format_float_scientific(p, unique=True, exp_digits=2)


def format_tukey_p(p: float | None) -> str:
    """A Tukey p-value, or "< 1e-09" where the studentized-range integral is not accurate."""
    if p is not None and np.isfinite(p) and p < TUKEY_P_RESOLUTION:
        return f"< {TUKEY_P_RESOLUTION:.0e}"
    return format_p(p)


def summary_dict(analysis: Analysis) -> dict:
    sel = analysis.selection
    anova = analysis.anova
    model = analysis.choice_model
    return _clean(
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
    )


def details_dict(analysis: Analysis) -> dict:
    sel = analysis.selection
    design = analysis.votes.design
    desc = analysis.descriptives
    return _clean(
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
    if ns and max(ns) / min(ns) > 20:  # a wide search reads better on a log axis
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(0, 1.02)
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


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _cell(text: object) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _pair(g1: str, g2: str) -> str:
    return f"{display_name(g1)} vs {display_name(g2)}"


def render_markdown(analysis: Analysis) -> str:
    sel = analysis.selection
    design = analysis.votes.design
    totals = analysis.vote_totals
    n_votes = sum(totals.values())
    anova = analysis.anova
    fr = analysis.friedman
    desc = analysis.descriptives
    by_reason = sel.excluded_by_reason()
    order = sorted(analysis.methods, key=lambda m: -totals[m])
    k = len(analysis.methods)
    parts: list[str] = ["# Human evaluation: analysis of the votes", ""]

    if analysis.warnings:
        parts += ["> **Warning** — read before using these numbers:"]
        parts += [f"> - {w}" for w in analysis.warnings]
        parts += [""]

    parts += [
        f"Source: `{analysis.votes.source}`. Methods: "
        + ", ".join(display_name(m) for m in analysis.methods)
        + f"{_SOURCES[analysis.votes.methods_source]}. Survey: {design.real_questions} real "
        f"questions and {design.attention_checks} attention checks per participant"
        + f"{_SOURCES[analysis.votes.design_source]}. Inclusion rule: "
        f"at least {sel.min_checks} of {design.attention_checks} attention checks passed; "
        + (
            "incomplete surveys kept if they had not already failed that rule."
            if sel.include_incomplete
            else "incomplete surveys excluded."
        )
        + (
            f" Pre-declared speeder rule: participants whose median response time is below "
            f"{sel.speeder_ms} ms excluded."
            if sel.speeder_ms is not None
            else " No speeder exclusion (the paper used none)."
        ),
        "",
        "## Summary (pasteable)",
        "",
        _paragraph(analysis, order),
        "",
        "## Participants",
        "",
        _table(
            ["", "participants"],
            [["recorded", str(sel.total)]]
            + [[f"excluded: {REASONS[k]}", str(v)] for k, v in by_reason.items()]
            + [["**kept (analysed)**", f"**{sel.kept}**"]],
        ),
        "",
    ]
    excluded = sel.participants.loc[~sel.participants["kept"]]
    if len(excluded):
        limit = 50
        rows = [
            [f"`{_cell(pid)}`", REASONS[r.reason], r.detail]
            for pid, r in excluded.head(limit).iterrows()
        ]
        parts += [
            "Excluded participants"
            + (
                f" (first {limit} of {len(excluded)}; all in `exclusions.csv`)"
                if len(excluded) > limit
                else " (also in `exclusions.csv`)"
            )
            + ":",
            "",
            _table(["participant", "reason", "detail"], rows),
            "",
        ]

    parts += [
        "## Votes",
        "",
        "Votes are the kept participants' answers to real questions; attention-check "
        "answers are never votes. A participant's *proportion* for a method is that "
        "method's share of the participant's own real-question votes.",
        "",
        _table(
            ["method", "votes", "share of all votes", "mean proportion", "SD", "95% CI of mean"],
            [
                [
                    display_name(m),
                    str(totals[m]),
                    f"{totals[m] / n_votes:.3f}",
                    _num(desc.loc[m, "mean"]),
                    _num(desc.loc[m, "sd"]),
                    f"[{_num(desc.loc[m, 'ci_low'])}, {_num(desc.loc[m, 'ci_high'])}]",
                ]
                for m in analysis.methods
            ],
        ),
        "",
        "![Votes per method](votes.png)",
        "",
        "![Per-participant vote proportions](proportions.png)",
        "",
        *_primary_section(analysis),
        "## Reproduction: the paper's analysis (Ahern et al. 2020), one-way ANOVA and Tukey HSD",
        "",
        "This is the paper's test, reproduced as published so that the numbers can be set "
        "beside its own. It is not our primary analysis (see above).",
        "",
        "Observations: one proportion per participant per method "
        f"({sel.kept} x {k} = {sel.kept * k}), methods as groups.",
        "",
        _table(
            ["source", "df", "sum of squares", "F", "p", "eta squared"],
            [
                [
                    "methods",
                    str(anova.df_between),
                    f"{anova.ss_between:.6g}",
                    _stat(anova.F),
                    format_p(anova.p),
                    _num(anova.eta_squared),
                ],
                ["residual", str(anova.df_within), f"{anova.ss_within:.6g}", "", "", ""],
            ],
        ),
        "",
        f"Tukey HSD (statsmodels `pairwise_tukeyhsd`, family-wise alpha = {analysis.alpha}); "
        "meandiff = mean(group2) - mean(group1) of the proportions:",
        "",
        _table(
            ["group1", "group2", "meandiff", "p adj", "lower", "upper", "reject"],
            [
                [
                    display_name(r["group1"]),
                    display_name(r["group2"]),
                    _num(r["meandiff"]),
                    format_tukey_p(r["p_adj"]),
                    _num(r["lower"]),
                    _num(r["upper"]),
                    "undefined" if r["reject"] is None else str(r["reject"]),
                ]
                for r in analysis.tukey
            ],
        ),
        "",
        f"Tukey p-values below {TUKEY_P_RESOLUTION:.0e} are shown as such: statsmodels "
        "computes them with scipy's studentized-range distribution, whose numerical "
        "integration cannot resolve smaller tail probabilities (its raw value is kept in "
        "`summary.json`).",
        "",
        "## Secondary analyses: repeated-measures tests",
        "",
        *_rm_anova_section(analysis),
        f"The one-way ANOVA treats the {_word(k)} proportions of one participant as "
        f"{_word(k)} independent observations. They are not: they come from the same person "
        f"and sum to 1, so a high {display_name(analysis.methods[0])} share forces low "
        "shares elsewhere. The tests below treat each participant as a block instead and "
        "make no normality assumption.",
        "",
        (
            f"Friedman test: not run ({fr['note']}; with two the Wilcoxon test below is "
            "the paired comparison). "
            if fr.get("note")
            else f"Friedman test (participants as blocks): chi2({fr['df']}) = "
            f"{_stat(fr['statistic'])}, p = {format_p(fr['p'])}, n = {fr['n']}, Kendall's "
            f"W = {_num(fr['kendalls_w'], 3)}. "
        )
        + f"Mean within-participant ranks ({k} = most votes): "
        + ", ".join(f"{display_name(m)} {fr['mean_ranks'][m]:.2f}" for m in analysis.methods)
        + ".",
        "",
        f"Pairwise Wilcoxon signed-rank tests (two-sided, zero differences dropped), Holm "
        f"correction over the {_pairs(k)} at alpha = {analysis.alpha}; difference = group2 - "
        "group1:",
        "",
        _table(
            [
                "group1",
                "group2",
                "non-zero pairs",
                "median diff",
                "W",
                "p",
                "p (Holm)",
                "rank-biserial r",
                "reject",
            ],
            [
                [
                    display_name(r["group1"]),
                    display_name(r["group2"]),
                    str(r["n_nonzero"]),
                    _num(r["median_difference"]),
                    _stat(r["statistic"]),
                    format_p(r["p"]),
                    format_p(r["p_holm"]),
                    _num(r["rank_biserial"], 3),
                    str(r["reject"]),
                ]
                for r in analysis.wilcoxon
            ],
        ),
        "",
        "## Position bias",
        "",
        _position_text(analysis.position_bias),
        "",
        *_robustness_section(analysis),
        "## Files",
        "",
        "`summary.json` (the numbers above), `details.json` (settings, exclusions, "
        "warnings, descriptives, the GEE cross-check), `exclusions.csv`, `proportions.csv` "
        "(the paper's observations), `votes.png`, `proportions.png`, `choice_model.png`, "
        "`digits.png`.",
        "",
    ]
    return "\n".join(parts)


def _paragraph(analysis: Analysis, order: list[str]) -> str:
    sel = analysis.selection
    totals = analysis.vote_totals
    anova = analysis.anova
    fr = analysis.friedman
    by_reason = sel.excluded_by_reason()
    excluded = "; ".join(f"{REASONS[k]}: {v}" for k, v in by_reason.items() if v)
    text = (
        f"Of {sel.total} participants, {sel.excluded} were excluded"
        + (f" ({excluded})" if excluded else "")
        + f", leaving {sel.kept}. Their votes were: "
        + ", ".join(f"{totals[m]} for {display_name(m)}" for m in order)
        + ". "
        + _primary_sentence(analysis)
        + " As a reproduction of the paper's analysis (Ahern et al. 2020), we treated each "
        f"participant's vote proportions as one sample per method and ran a one-way ANOVA: "
        f"F({anova.df_between}, "
        f"{anova.df_within}) = {_stat(anova.F)}, p = {format_p(anova.p)}, "
        f"eta squared = {_num(anova.eta_squared, 3)}."
    )
    significant = [r for r in analysis.tukey if r["reject"]]
    if significant:
        text += (
            f" Tukey HSD post-hoc comparisons (alpha = {analysis.alpha}) found significant "
            "differences for "
            + ", ".join(
                f"{_pair(r['group1'], r['group2'])} (p adj {_tukey_rel(r['p_adj'])})"
                for r in significant
            )
            + "."
        )
    else:
        text += " Tukey HSD found no significant pairwise difference."
    holm = [r for r in analysis.wilcoxon if r["reject"]]
    rm = analysis.rm_anova
    text += (
        " Because one participant's proportions sum to one and are not independent, the "
        f"repeated-measures ANOVA is the correct form of that test: F({rm['df_effect']}, "
        f"{rm['df_error']}) = {_stat(rm['F'])}, p = {format_p(rm['p'])}. We "
        + (
            "also ran "
            if fr.get("note")
            else f"also ran a Friedman test (chi2({fr['df']}) = {_stat(fr['statistic'])}, p "
            f"= {format_p(fr['p'])}, Kendall's W = {_num(fr['kendalls_w'], 3)}) and "
        )
        + "pairwise Wilcoxon signed-rank tests with Holm correction, which rejected "
        f"{len(holm)} of {len(analysis.wilcoxon)} pairwise null hypotheses."
    )
    return text


def _primary_sentence(analysis: Analysis) -> str:
    model = analysis.choice_model
    if model is None:
        return f"(The primary choice model could not be fitted: {analysis.choice_note}.)"
    level = f"{model.bootstrap['level']:.0%}"
    others = [m for m in analysis.methods if m != model.reference]
    return (
        "In the primary analysis, a conditional logit of each choice with the method and "
        "the screen slot as covariates, the log-odds of choosing each method rather than "
        f"{display_name(model.reference)} were "
        + ", ".join(
            f"{_num(model.coef[m], 2)} for {display_name(m)} ({level} CI "
            f"{_num(model.ci[m][0], 2)} to {_num(model.ci[m][1], 2)})"
            for m in others
        )
        + f" (cluster bootstrap over participants, {model.bootstrap['n']} resamples, seed "
        f"{model.bootstrap['seed']}); robust Wald test of no method effect: "
        f"F({model.omnibus['df'][0]}, {model.omnibus['df'][1]}) = "
        f"{_stat(model.omnibus['F'])}, p = {format_p(model.omnibus['p'])}."
    )


def _primary_section(analysis: Analysis) -> list[str]:
    model = analysis.choice_model
    head = ["## Primary analysis: a conditional logit of the choices", ""]
    if model is None:
        return head + [
            f"Not fitted: {analysis.choice_note}. Exports written by the study server since "
            "the options column exists carry the screen order; the secondary tests below "
            "do not need it.",
            "",
        ]
    ref = display_name(model.reference)
    level = f"{model.bootstrap['level']:.0%}"
    k = len(analysis.methods)
    rows = []
    for m in analysis.methods:
        if m == model.reference:
            rows.append([display_name(m), "0 (reference)", "1", "", "", "", ""])
            continue
        lo, hi = model.ci[m]
        loo = model.leave_one_out[m]
        rows.append(
            [
                display_name(m),
                _num(model.coef[m], 3),
                _num(float(np.exp(model.coef[m])), 3),
                f"[{_num(lo, 3)}, {_num(hi, 3)}]",
                _num(model.se_robust[m], 3),
                format_p(model.p_wald[m]),
                f"[{_num(loo[0], 3)}, {_num(loo[1], 3)}]",
            ]
        )
    slots = [
        [
            f"slot {s}",
            _num(v, 3) if s != "1" else "0 (reference)",
            ""
            if s == "1"
            else f"[{_num(model.position_ci[s][0], 3)}, {_num(model.position_ci[s][1], 3)}]",
        ]
        for s, v in model.position_coef.items()
    ]
    gee = model.cross_check
    return head + [
        f"Each real question is one choice among the {_word(k)} maps on the screen. The model "
        "gives the option showing method m in screen slot s the utility beta_m + gamma_s "
        f"and the chosen option the probability exp(utility) / sum over the {_word(k)} options "
        "(McFadden's conditional logit, one stratum per question). beta is the log-odds of "
        f"choosing a method over {ref} when both are on the screen, whatever the slots. "
        f"Intervals: {level} percentile cluster bootstrap ({model.bootstrap['n']} "
        f"resamples of the {model.n_participants} participants, seed "
        f"{model.bootstrap['seed']}; {model.bootstrap['failed']} resamples without a finite "
        "estimate were dropped). p: Wald test with cluster-robust (sandwich) errors, "
        "participants as clusters, against t(G - 1) (G participants); the joint test as "
        "F(q, G - q), Hotelling's small-sample form (plain normal and chi-square references "
        "reject true nulls far too often with few participants). Leave-one-out: the range "
        "of the estimate when each participant in turn is left out.",
        "",
        _table(
            [
                "method",
                f"log-odds vs {ref}",
                "odds ratio",
                f"{level} CI",
                "robust SE",
                "p",
                "leave-one-out range",
            ],
            rows,
        ),
        "",
        _statsmodels_sentence(model.statsmodels_check),
        "",
        f"No method effect at all: cluster-robust Wald W = {_stat(model.omnibus['wald'])}, "
        f"as F({model.omnibus['df'][0]}, {model.omnibus['df'][1]}) = "
        f"{_stat(model.omnibus['F'])}, p = {format_p(model.omnibus['p'])} "
        f"({model.n_questions} choices).",
        "",
        "Screen slot (log-odds against the leftmost slot):",
        "",
        _table(["slot", "log-odds", f"{level} CI"], slots),
        "",
        "![Primary analysis](choice_model.png)",
        "",
        "Cross-check, a marginal model of the chosen method (multinomial log-odds, the "
        "estimates of statsmodels' NominalGEE, with cluster-robust 95% intervals; it "
        "ignores the slots, so it matches the estimates above only when the position "
        "effects are small): "
        + ", ".join(
            f"{display_name(m)} {_num(gee['coef'][m], 3)} [{_num(gee['ci'][m][0], 3)}, "
            f"{_num(gee['ci'][m][1], 3)}]"
            for m in analysis.methods
            if m != model.reference
        )
        + ".",
        "",
    ]


def _statsmodels_sentence(check: dict) -> str:
    if not check:
        return ""
    if not check.get("fitted"):
        return f"statsmodels refit not run: {check['reason']}."
    return (
        "The same model refitted with statsmodels' ConditionalLogit on the long table (one "
        "row per shown option): largest coefficient difference "
        f"{check['max_abs_difference']:.1e}."
    )


def _rm_anova_section(analysis: Analysis) -> list[str]:
    rm, anova = analysis.rm_anova, analysis.anova
    k = len(analysis.methods)
    return [
        f"Repeated-measures ANOVA (participants as subjects; the F of statsmodels' AnovaRM): "
        f"F({rm['df_effect']}, {rm['df_error']}) = {_stat(rm['F'])}, p = {format_p(rm['p'])}; "
        f"Greenhouse-Geisser epsilon {_num(rm['greenhouse_geisser_epsilon'], 3)}, corrected "
        f"p = {format_p(rm['p_greenhouse_geisser'])}.",
        "",
        "Why it is exactly "
        f"{k - 1}/{k} of the paper's F: each participant's {k} proportions sum to 1, so "
        f"every participant's mean is 1/{k} and the subject sum of squares is 0 (here "
        f"{rm['ss_subjects']:.3g}). The one-way residual sum of squares is then the "
        "repeated-measures residual, but its degrees of freedom fall from k(n - 1) = "
        f"{anova.df_within} to (k - 1)(n - 1) = {rm['df_error']}, and F = (SS_methods / "
        f"(k - 1)) / (SS_residual / df) shrinks by the same factor {k - 1}/{k} (ratio "
        f"measured here: {_num(rm['ratio_to_one_way'], 6)}). The one-way test counts "
        "dependent observations as independent; the repeated-measures test does not.",
        "",
    ]


def _robustness_section(analysis: Analysis) -> list[str]:
    rob = analysis.robustness
    rows = [
        [
            f"{display_name(r['ahead'])} above {display_name(r['behind'])}",
            str(r["gap"]),
            str(r["votes"]),
            "not reachable" if r["participants"] is None else str(r["participants"]),
        ]
        for r in rob["reversals"]
    ]
    top = rob["top_rank"]
    parts = [
        "## Robustness",
        "",
        "How many answers, and how many participants, would have to change to reverse each "
        "ordering of the vote totals (B strictly above A). Votes: answers changed from A to "
        "B. Participants: the fewest whose answers, all rewritten in the most damaging way, "
        f"reverse it (out of {analysis.selection.kept} kept).",
        "",
        _table(["ordering", "vote gap", "votes to reverse", "participants to reverse"], rows),
        "",
        f"Top rank: {display_name(top['leader'])} leads; {top['votes']} changed votes (towards "
        f"{display_name(top['votes_challenger'])}) or {top['participants']} participants would "
        "dethrone it.",
        "",
        f"### Per {_item(analysis)}",
        "",
    ]
    table = analysis.by_digit
    share = _digit_shares(table)
    parts += [
        _table(
            [_item(analysis), *[f"{display_name(m)} votes (share)" for m in analysis.methods]],
            [
                [str(d)]
                + [f"{int(table.loc[d, m])} ({_num(share.loc[d, m], 2)})" for m in analysis.methods]
                for d in table.index
            ],
        ),
        "",
        f"![Votes by {_item(analysis)}](digits.png)",
        "",
    ]
    by_digit = rob.get("by_digit")
    if by_digit:
        ref = by_digit["reference"]
        others = [m for m in analysis.methods if m != ref]
        parts += [
            f"The choice model on each {_item(analysis)} alone (log-odds vs "
            f"{display_name(ref)}, 95% "
            "cluster-robust Wald interval):",
            "",
            _table(
                [_item(analysis), *[display_name(m) for m in others]],
                [
                    [d]
                    + [
                        f"{_num(row[m]['coef'], 2)} [{_num(row[m]['ci'][0], 2)}, "
                        f"{_num(row[m]['ci'][1], 2)}]"
                        if m in row
                        else "not estimable"
                        for m in others
                    ]
                    for d, row in by_digit["digits"].items()
                ],
            ),
            "",
        ]
    inter = rob.get("digit_interaction")
    if inter:
        parts += [
            (
                f"Do the method effects differ between {_item(analysis)}s? {inter['test']}: LR = "
                f"{_stat(inter['lr'])} ({inter['df']} parameters), p = "
                f"{_num(inter['p'], 3)} ({inter['permutations']} permutations, seed "
                f"{inter['seed']})."
                if inter["tested"]
                else f"Digit-by-method model not tested: {inter['reason']}."
            ),
            "",
        ]
    return parts


#: how the report says where the methods and the survey design came from
_SOURCES = {
    "given": " (as given)",
    "paper": " (the paper's)",
    "options": " (read from the options column)",
    "chosen_method": " (read from the chosen methods: the export has no options column)",
    "inferred": " (read from the data: the most common complete survey)",
}
_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _item(analysis: Analysis) -> str:
    """What the ``digit`` column holds: MNIST digits in the replication, else classes."""
    return "digit" if is_replication(analysis.methods) else "class"


def _word(n: int) -> str:
    return _WORDS[n] if 0 <= n < len(_WORDS) else str(n)


def _pairs(k: int) -> str:
    """The k methods' pairs in words: "six pairs", "single pair"."""
    n = k * (k - 1) // 2
    return "single pair" if n == 1 else f"{_word(n)} pairs"


def _tukey_rel(p: float) -> str:
    text = format_tukey_p(p)
    return text if text.startswith("<") else f"= {text}"


def _position_text(pb: dict) -> str:
    if not pb.get("available"):
        return f"Not available: {pb['reason']}."
    counts = ", ".join(f"slot {s}: {c}" for s, c in pb["counts"].items())
    return (
        "Chi-square goodness-of-fit test of the chosen screen slot against a uniform "
        f"distribution over the {_word(len(pb['counts']))} slots (the method order is "
        "randomised per question, so "
        "without a position preference every slot is equally likely): "
        f"{counts} ({pb['n_answers']} kept real answers); chi2({pb['df']}) = "
        f"{_stat(pb['chi2'])}, p = {format_p(pb['p'])}. Answers are treated as independent, "
        "which ignores clustering within participants."
    )
