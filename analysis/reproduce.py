"""``normlime reproduce``: the paper end to end, into one report and a list of claims.

Steps, each written into its own folder of ``--out`` and skipped when its outputs exist
(so an interrupted run resumes; KAR and occlusion also resume inside a step):

1. ``model``      the CNN: the shipped one (or ``--model``), its recorded test accuracy;
2. ``maps``       the stimuli: the shipped bundle (smoke, cpu) or ``precompute --preset
                  paper`` (paper), with the inspect-maps report and montage;
3. ``study``      the human-study analysis of ``--votes``, or of a SIMULATED study when no
                  votes are given (labelled as such everywhere, and never compared);
4. ``kar-pixels``, ``kar-conv``, ``occlusion``  the numerical benchmarks at the preset.

Then ``report.md``, ``report.html`` (self-contained: figures inline) and ``claims.json``.

Each claim of the paper gets a verdict by a rule stated before looking at our numbers
(:data:`CLAIM_RULES`): *reproduced*, *not reproduced*, or *not comparable* (with the
reason: simulated votes, a preset too small to mean anything, a fraction not run).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from explainers.shipped import shipped_maps, shipped_model

from .templating import to_html

__all__ = ["CLAIM_RULES", "PAPER", "ReproducePreset", "PRESETS", "evaluate_claims", "to_html"]

SHIPPED_MODEL = shipped_model()
SHIPPED_MAPS = shipped_maps()

#: the paper's figures (Ahern et al. 2020)
PAPER = {
    "test_accuracy": 0.9904,
    "votes": {"normlime": 939, "lime": 438, "vargrad": 151, "smoothgrad": 132},
    "kept_surveys": 83,
    "anova_F": 338.0,
    "anova_p": 5.22e-100,
    "pixels_normlime_gain_at_50": 0.0,
    "conv_best_accuracy": 0.9931,
    "conv_baseline_accuracy": 0.9906,
}

#: the verdict rules, fixed before any of our numbers are read
CLAIM_RULES = {
    "accuracy": "reproduced if our test accuracy is within 0.3 percentage points of 99.04% "
    "(the spread of MNIST CNN retrainings); not comparable if the model saw a training subset",
    "votes": "reproduced if the vote totals keep the paper's order: NormLIME > LIME > each "
    "gradient method",
    "anova": "reproduced if the one-way ANOVA rejects at p < 0.001 (the F itself grows with "
    "the number of participants and is compared only for its conclusion)",
    "tukey": "reproduced if Tukey HSD gives p < 0.001 for NormLIME against each other method "
    "and for LIME against SmoothGrad and VarGrad",
    "primary": "reproduced if the primary choice model's 95% interval for NormLIME vs LIME "
    "lies above 0",
    "figure1": "reproduced if the shown NormLIME and LIME maps are not near-duplicates "
    "(displayed r >= 0.9 on at least half of the digits) and neither is as bright off the "
    "digit's support, or in the frame outside it, as on it on any digit (the inspect-maps "
    "flags of docs/stimuli-protocol.md, part two)",
    "kar_pixels": "reproduced if NormLIME's error gain at 50% of pixels removed is at most "
    "0.1 percentage points and no gradient method (SmoothGrad, VarGrad) is lower",
    "kar_conv_best": "reproduced if NormLIME at 30% of conv features removed is at least as "
    "accurate as the unmodified model (the paper: 99.31% vs 99.06%)",
    "kar_conv_order": "reproduced if NormLIME's error gain is at most LIME's at 80% and at "
    "90% of conv features removed",
}


@dataclass(frozen=True)
class ReproducePreset:
    name: str
    benchmark_preset: str
    maps: str  # "shipped" or a precompute preset
    comparable: bool  # whether the benchmark numbers may be compared with the paper
    simulated_participants: int
    bootstrap: int
    why_not: str = ""
    #: test images of the numerical evaluation (normlime evaluate)
    evaluate_images: int = 100


PRESETS = {
    "smoke": ReproducePreset(
        "smoke",
        "smoke",
        "shipped",
        False,
        83,
        200,
        "The smoke preset trains on 1,500 images for 2 epochs: it exercises the code path, "
        "its numbers mean nothing",
        evaluate_images=20,
    ),
    "cpu": ReproducePreset("cpu", "cpu", "shipped", True, 83, 1000),
    "paper": ReproducePreset("paper", "paper", "paper", True, 83, 1000, evaluate_images=1000),
}


# ---------------------------------------------------------------------------- claims


def _claim(claim, paper, ours, verdict, why):
    return {"claim": claim, "paper": paper, "ours": ours, "verdict": verdict, "why": why}


def evaluate_claims(
    model_meta: dict,
    study: dict | None,
    simulated: bool,
    kar_pixels: list[dict] | None,
    kar_conv: list[dict] | None,
    preset: ReproducePreset,
    inspect: dict | None = None,
) -> list[dict]:
    """Every claim with its verdict; ``study`` is a summary.json, the KAR arguments are the
    rows of kar-summary.csv, ``inspect`` the stimulus report of the maps (with the digits'
    support measured)."""
    claims = [_accuracy_claim(model_meta)]
    if inspect is not None:
        claims.append(_figure1_claim(inspect))
    claims += _study_claims(study, simulated)
    claims += _kar_claims(kar_pixels, kar_conv, preset)
    return claims


def _figure1_claim(inspect: dict) -> dict:
    """Figure 1: NormLIME visibly differs from LIME, and both show the digit."""
    text = "Figure 1: NormLIME differs visibly from LIME, and shows the digit"
    paper = "NormLIME crisp, LIME shape-like but undifferentiated"
    pair = (inspect.get("pairs") or {}).get("normlime|lime")
    methods = inspect.get("methods", {})
    if pair is None or any("off_support_brightness" not in methods.get(m, {}) for m in
                           ("normlime", "lime")):  # fmt: skip
        return _claim(text, paper, None, "not comparable",
                      "the stimulus report lacks the NormLIME/LIME pair or the digits' support")
    off = {
        m: [d for d, key in enumerate(methods[m]["off_support_brightness"])
            if _at_least_one(key) or _at_least_one(methods[m]["frame_off_support_brightness"][d])]
        for m in ("normlime", "lime")
    }  # fmt: skip
    ours = (
        f"displayed NormLIME vs LIME median r {pair['median_r']:.3f} (>= 0.9 on "
        f"{pair['classes_at_or_above']} of 10 digits); digits as bright off their support as "
        f"on it: NormLIME {off['normlime'] or 'none'}, LIME {off['lime'] or 'none'}"
    )
    ok = not pair["near_duplicate"] and not off["normlime"] and not off["lime"]
    return _claim(text, paper, ours, "reproduced" if ok else "not reproduced",
                  CLAIM_RULES["figure1"])  # fmt: skip


def _at_least_one(value) -> bool:
    return value is not None and value >= 1.0


def _accuracy_claim(meta: dict) -> dict:
    acc = meta.get("test_accuracy")
    n_train = (meta.get("data") or {}).get("n_train")
    if acc is None:
        return _claim(
            "test accuracy 99.04%",
            "99.04%",
            None,
            "not comparable",
            "the model records no test accuracy",
        )
    if n_train is not None and n_train < 60000:
        return _claim(
            "test accuracy 99.04%",
            "99.04%",
            f"{acc:.2%}",
            "not comparable",
            f"trained on {n_train} images, not the full 60,000",
        )
    ok = abs(acc - PAPER["test_accuracy"]) <= 0.003
    return _claim(
        "test accuracy 99.04%",
        "99.04%",
        f"{acc:.2%}",
        "reproduced" if ok else "not reproduced",
        CLAIM_RULES["accuracy"],
    )


def _study_claims(study: dict | None, simulated: bool) -> list[dict]:
    names = ("votes", "anova", "tukey", "primary")
    texts = {
        "votes": "votes 939 / 438 / 151 / 132 (NormLIME / LIME / VarGrad / SmoothGrad) from "
        "83 kept surveys",
        "anova": "one-way ANOVA F(3, 328) = 338, p = 5.22e-100",
        "tukey": "Tukey HSD p < 0.001: NormLIME vs each method, LIME vs the gradient methods",
        "primary": "NormLIME preferred to LIME (our primary model; the paper's own test is "
        "the ANOVA)",
    }
    papers = {
        "votes": "939 / 438 / 151 / 132 (83 surveys)",
        "anova": "F = 338, p = 5.22e-100",
        "tukey": "p < 0.001 for all five pairs",
        "primary": "not reported (the paper ran no choice model)",
    }
    if study is None or simulated:
        why = (
            "no votes given: the study step analysed a SIMULATED study, which shows the "
            "analysis works but says nothing about people"
        )
        return [_claim(texts[n], papers[n], None, "not comparable", why) for n in names]
    v = study["votes"]
    order_ok = v["normlime"] > v["lime"] > max(v["smoothgrad"], v["vargrad"])
    anova = study["anova"]
    tukey = {frozenset((r["group1"], r["group2"])): r["p_adj"] for r in study["tukey"]}
    pairs = [("normlime", m) for m in ("lime", "smoothgrad", "vargrad")]
    pairs += [("lime", "smoothgrad"), ("lime", "vargrad")]
    tukey_ok = all((tukey.get(frozenset(p)) or 1.0) < 0.001 for p in pairs)
    model = study.get("choice_model")
    claims = [
        _claim(
            texts["votes"],
            papers["votes"],
            " / ".join(str(v[m]) for m in ("normlime", "lime", "vargrad", "smoothgrad"))
            + f" ({study['participants']['kept']} surveys)",
            "reproduced" if order_ok else "not reproduced",
            CLAIM_RULES["votes"],
        ),
        _claim(
            texts["anova"],
            papers["anova"],
            f"F({anova['df_between']}, {anova['df_within']}) = {anova['F']:.4g}, "
            f"p = {anova['p']:.3g}",
            "reproduced" if (anova["p"] is not None and anova["p"] < 0.001) else "not reproduced",
            CLAIM_RULES["anova"],
        ),
        _claim(
            texts["tukey"],
            papers["tukey"],
            ", ".join(f"{a}-{b} {tukey.get(frozenset((a, b))):.2g}" for a, b in pairs),
            "reproduced" if tukey_ok else "not reproduced",
            CLAIM_RULES["tukey"],
        ),
    ]
    if model is None:
        claims.append(
            _claim(
                texts["primary"],
                papers["primary"],
                None,
                "not comparable",
                study.get("choice_model_note") or "no choice model",
            )
        )
    else:
        lo, hi = model["ci"]["normlime"]
        claims.append(
            _claim(
                texts["primary"],
                papers["primary"],
                f"log-odds {model['coef']['normlime']:.3f} [{lo:.3f}, {hi:.3f}]",
                "reproduced" if lo > 0 else "not reproduced",
                CLAIM_RULES["primary"],
            )
        )
    return claims


def _row(rows, method, fraction, kind="kar"):
    for r in rows or []:
        if (
            r["kind"] == kind
            and r["method"] == method
            and abs(float(r["fraction"]) - fraction) < 1e-9
        ):
            return r
    return None


def _kar_claims(pixels, conv, preset: ReproducePreset) -> list[dict]:
    claims = []
    text = "KAR pixels (Figure 5): NormLIME 0% error gain at 50% removed, gradient methods worse"
    paper = "NormLIME 0.00 pp at 50%; gradient methods outperformed by NormLIME and LIME"
    nl = _row(pixels, "normlime", 0.5)
    grads = [g for g in (_row(pixels, m, 0.5) for m in ("smoothgrad", "vargrad")) if g]
    if not preset.comparable:
        claims.append(_claim(text, paper, _gain(nl), "not comparable", preset.why_not))
    elif nl is None or not grads:
        claims.append(
            _claim(
                text,
                paper,
                None,
                "not comparable",
                "NormLIME or the gradient methods were not run at 50%",
            )
        )
    else:
        gain = float(nl["error_gain_mean"])
        ok = gain <= 0.1 and all(gain <= float(g["error_gain_mean"]) for g in grads)
        claims.append(
            _claim(
                text,
                paper,
                _gain(nl),
                "reproduced" if ok else "not reproduced",
                CLAIM_RULES["kar_pixels"],
            )
        )

    text = "KAR conv features (Figure 6): NormLIME best, 99.31% at 30% removed (above 99.06%)"
    nl = _row(conv, "normlime", 0.3)
    base = _row(conv, "baseline", 0.0, kind="baseline") or next(
        (r for r in conv or [] if r["kind"] == "baseline"), None
    )
    if not preset.comparable:
        claims.append(_claim(text, "99.31% vs 99.06%", _acc(nl), "not comparable", preset.why_not))
    elif nl is None or base is None:
        claims.append(
            _claim(
                text, "99.31% vs 99.06%", None, "not comparable", "30% of conv features was not run"
            )
        )
    else:
        ok = float(nl["accuracy_mean"]) >= float(base["accuracy_mean"])
        claims.append(
            _claim(
                text,
                "99.31% vs 99.06%",
                f"{_acc(nl)} vs {float(base['accuracy_mean']):.2%}",
                "reproduced" if ok else "not reproduced",
                CLAIM_RULES["kar_conv_best"],
            )
        )

    text = "KAR conv features: NormLIME's error gain at most LIME's at 80% and 90% removed"
    paper = "80%: 0 vs 0.3 pp; 90%: 0.45 vs 0.60 pp"
    cells = [(_row(conv, "normlime", f), _row(conv, "lime", f)) for f in (0.8, 0.9)]
    if not preset.comparable:
        ours = "; ".join(f"{_gain(a)} vs {_gain(b)}" for a, b in cells)
        claims.append(_claim(text, paper, ours, "not comparable", preset.why_not))
    elif any(a is None or b is None for a, b in cells):
        claims.append(
            _claim(
                text,
                paper,
                None,
                "not comparable",
                "80% and 90% of conv features were not both run",
            )
        )
    else:
        ok = all(float(a["error_gain_mean"]) <= float(b["error_gain_mean"]) for a, b in cells)
        claims.append(
            _claim(
                text,
                paper,
                "; ".join(f"{_gain(a)} vs {_gain(b)}" for a, b in cells),
                "reproduced" if ok else "not reproduced",
                CLAIM_RULES["kar_conv_order"],
            )
        )
    return claims


def _gain(row) -> str:
    return "not run" if row is None else f"{float(row['error_gain_mean']):+.2f} pp"


def _acc(row) -> str:
    return "not run" if row is None else f"{float(row['accuracy_mean']):.2%}"


# ---------------------------------------------------------------------------- report


def render_report(ctx: dict) -> str:
    """report.md from the steps' outputs (``ctx`` is built by the command), through the
    template ``analysis/templates/reproduce_report.md.j2``."""
    from .templating import render

    claims = ctx["claims"]
    counts = {
        v: sum(c["verdict"] == v for c in claims)
        for v in ("reproduced", "not reproduced", "not comparable")
    }
    meta = ctx["model_meta"]
    stimulus = "; ".join(
        f"{m} drawn black {_mean(v.get('black_share')):.2f}, border mass "
        f"{_mean(v.get('border_mass_share')):.2f}"
        for m, v in ctx["inspect"].get("methods", {}).items()
    )
    return render(
        "reproduce_report.md.j2",
        preset=ctx["preset"],
        seed=ctx["seed"],
        finished=ctx["finished"],
        simulated=ctx["simulated"],
        verdict_counts=", ".join(f"{n} {v}" for v, n in counts.items()),
        claim_rows=[
            [_cell(c[k]) for k in ("claim", "paper", "ours", "verdict", "why")] for c in claims
        ],
        model_path=ctx["model_path"],
        model_sha=meta.get("sha256", "?")[:16],
        model_epochs=meta.get("epochs", "?"),
        model_n_train=(meta.get("data") or {}).get("n_train", "?"),
        model_accuracy=_pct(meta.get("test_accuracy")),
        maps_dir=ctx["maps_dir"],
        maps_note=ctx["maps_note"],
        stimulus_text=stimulus,
        flags=", ".join(map(str, ctx["inspect"].get("flags") or [])) or "none",
        study_text=_study_text(ctx["study"], ctx["simulated"]),
        texts=ctx["texts"],
        benchmarks=(
            ("kar-pixels", "KAR on input pixels (the paper's Figure 5)"),
            ("kar-conv", "KAR on conv features (the paper's Figure 6)"),
            ("occlusion", "Occlusion (Zhang & Gao)"),
        ),
        rules=CLAIM_RULES,
        steps=ctx["steps"],
    )


def _study_text(summary: dict, simulated: bool) -> str:
    v = summary["votes"]
    anova = summary["anova"]
    text = (
        ("Simulated votes" if simulated else "Votes")
        + f" of {summary['participants']['kept']} kept participants: "
        + ", ".join(f"{m} {n}" for m, n in v.items())
        + ". "
    )
    model = summary.get("choice_model")
    if model:
        text += (
            "Primary analysis (conditional logit, log-odds vs "
            f"{model['reference']}, 95% cluster-bootstrap CI): "
            + ", ".join(
                f"{m} {model['coef'][m]:.2f} [{model['ci'][m][0]:.2f}, {model['ci'][m][1]:.2f}]"
                for m in model["coef"]
                if m != model["reference"]
            )
            + ". "
        )
    text += (
        f"Reproduction of the paper's test: one-way ANOVA F({anova['df_between']}, "
        f"{anova['df_within']}) = {anova['F']:.4g}; the repeated-measures ANOVA gives "
        f"F({summary['rm_anova']['df_effect']}, {summary['rm_anova']['df_error']}) = "
        f"{summary['rm_anova']['F']:.4g} (3/4 of it, as it must)."
    )
    return text


def _mean(values) -> float:
    return sum(values) / len(values) if values else float("nan")


def _cell(value) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _pct(value) -> str:
    return "?" if value is None else f"{value:.2%}"


def write_report(out: Path, ctx: dict) -> dict[str, Path]:
    ctx["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    markdown = render_report(ctx)
    paths = {name: out / name for name in ("report.md", "report.html", "claims.json")}
    paths["report.md"].write_text(markdown)
    paths["report.html"].write_text(to_html(markdown, out, "NormLIME reproduced"))  # inlined
    paths["claims.json"].write_text(json.dumps(ctx["claims"], indent=2) + "\n")
    return paths


# ---------------------------------------------------------------------------- command


def run_reproduce(
    out: Path,
    *,
    preset_name: str = "cpu",
    votes_path: Path | None = None,
    model_path: Path | None = None,
    data_spec: str | None = None,
    scheduler: str | None = None,
    seed: int = 0,
    project=None,
    log=print,
    progress: bool = False,
) -> dict[str, Path]:
    """Run (or resume) every step into ``out``; return the report's paths.

    ``progress`` shows each long step's progress bar (on stderr), as the single commands do.

    ``project`` (an MNIST-shaped study project, e.g. the built-in ``mnist-paper``) gives
    the model file, the data and the maps: precompute runs the project's study.toml.
    """
    import csv

    preset = PRESETS[preset_name]
    out.mkdir(parents=True, exist_ok=True)
    if project is not None:
        from explainers.user_model import resolve_file

        model_path = model_path or resolve_file(project.root, project.model["file"])
        data_spec = data_spec or str(project.dataset.get("path", "embedded"))
    model_path = Path(model_path or SHIPPED_MODEL)
    sidecar = model_path.with_suffix(".json")
    model_meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    steps: dict[str, str] = {"model": f"{model_path} (sidecar {sidecar.name})"}

    maps_dir, maps_note = _maps_step(out, preset, model_path, data_spec, seed, log, project,
                                     progress)  # fmt: skip
    steps["maps"] = f"{maps_dir} ({maps_note})"
    inspect = _inspect_step(out / "maps", maps_dir, data_spec)

    summary, simulated, analysis = _study_step(out / "study", votes_path, preset, seed, log)
    steps["study"] = (
        f"SIMULATED study (100 surveys from the paper's shares, seed {seed}), "
        if simulated
        else f"votes {votes_path}, "
    ) + (f"{summary['participants']['kept']} kept participants")

    texts, rows = {}, {}
    from .benchmarks.api import kar_benchmark, occlusion_benchmark

    common = dict(
        preset=preset.benchmark_preset, seed=seed, model_path=model_path, data_spec=data_spec,
        scheduler=scheduler, progress=progress, log=log,
    )  # fmt: skip
    for key, run, extra in (
        ("kar-pixels", kar_benchmark, {"features": "pixels"}),
        ("kar-conv", kar_benchmark, {"features": "conv"}),
        ("occlusion", occlusion_benchmark, {}),
    ):
        folder = out / key
        started = time.perf_counter()
        log(f"reproduce: {key} (preset {preset.benchmark_preset}) into {folder}")
        run(folder, **extra, **common)
        steps[key] = f"{folder} ({time.perf_counter() - started:.0f} s this run)"
        md = folder / ("kar.md" if key.startswith("kar") else "occlusion.md")
        texts[key] = _demote_headings(md.read_text()) if md.is_file() else "not run"
        table = folder / "kar-summary.csv"
        if table.is_file():
            with table.open() as fh:
                rows[key] = list(csv.DictReader(fh))

    started = time.perf_counter()
    texts["evaluate"] = _evaluate_step(
        out / "evaluate", project, model_path, maps_dir, data_spec, preset, seed, analysis,
        simulated, log, progress,
    )  # fmt: skip
    steps["evaluate"] = f"{out / 'evaluate'} ({time.perf_counter() - started:.0f} s this run)"

    claims = evaluate_claims(
        model_meta, summary, simulated, rows.get("kar-pixels"), rows.get("kar-conv"), preset,
        inspect=inspect,
    )  # fmt: skip
    ctx = {
        "preset": preset,
        "seed": seed,
        "simulated": simulated,
        "claims": claims,
        "model_meta": model_meta,
        "model_path": model_path,
        "maps_dir": maps_dir,
        "maps_note": maps_note,
        "inspect": inspect,
        "study": summary,
        "texts": texts,
        "steps": steps,
    }
    return write_report(out, ctx)


def _demote_headings(text: str) -> str:
    """A step's markdown inside the report: its headings become level 3 and below."""
    return re.sub(r"^(#{1,2}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", text, flags=re.M)


def _maps_step(out: Path, preset, model_path, data_spec, seed, log, project=None,
               progress=False):  # fmt: skip
    if project is not None:
        from explainers.project_precompute import precompute_project

        folder = out / "maps-bundle"
        if not (folder / "manifest.json").is_file():
            log(f"reproduce: precompute --project {project.name} into {folder}")
            precompute_project(
                project, out_dir=folder, data_spec=data_spec, progress=progress, log=log,
                argv=["precompute", "--project", str(project.root), "--out", str(folder)],
            )  # fmt: skip
        return folder, f"precompute --project {project.name}, seed {project.seed}"
    if preset.maps == "shipped":
        return SHIPPED_MAPS, "the shipped bundle, precompute --preset stable, seed 0"
    from explainers.data import load_mnist
    from explainers.precompute import precompute

    folder = out / "maps-bundle"
    if not (folder / "manifest.json").is_file():
        log(f"reproduce: precompute --preset {preset.maps} into {folder}")
        # the manifest records the equivalent command, which rebuilds this bundle alone
        argv = ["precompute", "--model", str(model_path), "--preset", preset.maps,
                "--seed", str(seed), "--out", str(folder)]  # fmt: skip
        if data_spec:
            argv += ["--data", data_spec]
        precompute(
            model_path=model_path, data=load_mnist(data_spec or "embedded"), out_dir=folder,
            preset=preset.maps, seed=seed, progress=progress, log=log, argv=argv,
        )  # fmt: skip
    return folder, f"precompute --preset {preset.maps}, seed {seed}"


def _inspect_step(folder: Path, maps_dir: Path, data_spec: str | None = None) -> dict:
    """The stimulus report, with the digits' ink and support from the training images of
    ``data_spec`` (default: the embedded subset)."""
    from explainers.bundle import read_bundle
    from explainers.data import load_mnist
    from explainers.inspect import inspect_bundle, save_report, write_montage

    folder.mkdir(parents=True, exist_ok=True)
    data = load_mnist(data_spec or "embedded")
    report = inspect_bundle(maps_dir, images=data.train_images, labels=data.train_labels)
    save_report(report, folder / "inspect.json")
    if not (folder / "montage.png").is_file():
        write_montage(read_bundle(maps_dir), folder / "montage.png")
    return report


def _study_step(folder: Path, votes_path, preset, seed, log):
    from .study.pipeline import run_analysis
    from .study.report import summary_dict, write_outputs
    from .study.simulate import PAPER_PREFERENCES, simulate_export
    from .study.votes import read_votes_csv

    folder.mkdir(parents=True, exist_ok=True)
    simulated = votes_path is None
    if simulated:
        source = folder / "simulated-votes.csv"
        if not source.is_file():
            # the paper's shares, 100 surveys of which about 83 pass, like the paper's 83
            frame = simulate_export(100, preferences=PAPER_PREFERENCES, random_state=seed)
            frame.to_csv(source, index=False)
        log(f"reproduce: no --votes, analysing a SIMULATED study ({source})")
    else:
        source = Path(votes_path)
    analysis = run_analysis(
        read_votes_csv(source), source=str(source), bootstrap=preset.bootstrap, seed=seed
    )
    write_outputs(analysis, folder)
    return json.loads(json.dumps(summary_dict(analysis))), simulated, analysis


def _evaluate_step(folder, project, model_path, maps_dir, data_spec, preset, seed, analysis,
                   simulated, log, progress=False) -> str:  # fmt: skip
    """``normlime evaluate`` of the maps shown, and its orders next to the study's."""
    from explainers.project import load_project, with_model

    from .evaluate.compare import human_vs_metrics, markdown_rows
    from .evaluate.run import EvaluateSettings, evaluate_project

    if project is None:
        project = load_project("mnist")
        if Path(model_path) != Path(SHIPPED_MODEL):
            project = with_model(project, model_path)
    # --data names MNIST (default here as for the maps: the embedded subset); a project
    # of other data keeps its own
    data_spec = (data_spec or "embedded") if project.dataset.get("kind") == "mnist-idx" else None
    log(f"reproduce: evaluate ({preset.evaluate_images} images) into {folder}")
    settings = EvaluateSettings(images=preset.evaluate_images, seed=seed,
                                bootstrap=preset.bootstrap)  # fmt: skip
    evaluate_project(project, folder, settings, maps_dir=maps_dir, data_spec=data_spec,
                     progress=progress, log=log)  # fmt: skip
    text = _demote_headings((folder / "evaluation.md").read_text())
    if analysis.choice_model is None:
        return text + "\nNo comparison with the human study: its choice model was not fitted.\n"
    compared = human_vs_metrics(analysis.choice_model, folder)
    (folder / "human_vs_metrics.json").write_text(json.dumps(compared, indent=2) + "\n")
    lines = markdown_rows(compared)
    if simulated:
        lines[0] += " (SIMULATED votes: this comparison shows the code path, not a finding)"
    return text + "\n" + _demote_headings("\n".join(lines))
