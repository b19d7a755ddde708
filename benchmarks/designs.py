"""Benchmark and measurements for ``normlime analyze --responses`` (the designs that measure
whether an explanation helps): speed, interval coverage, power timings.

    .venv/bin/python benchmarks/designs.py                    # speed (target: 1,000
                                                              # participants x 40 answers < 60 s)
    .venv/bin/python benchmarks/designs.py --coverage [--sims 2000] [--bootstrap-sims 200]
    .venv/bin/python benchmarks/designs.py --power
    .venv/bin/python benchmarks/designs.py --lme4 [--sims 400]   # needs Rscript + lme4

Speed: writes a seeded simulated export (analysis.designs.simulate: 1,000 participants, 40
test answers each from a pool of 200 items, 4 conditions, attention checks, drop-outs, as
the server writes it) for each task, then times the whole command in a fresh interpreter
(``normlime analyze --responses ... --out ...``: start-up, imports, CSV parsing,
validation, filtering, the mixed model(s), plot, report) and the in-process statistics;
the bootstrap is off by default (Wald intervals are the primary), so it is timed
separately (``--bootstrap-draws``, default 100, on the forward task).

Coverage: simulated studies with known effects (odds ratios 2 and 1 against the
baseline, participant SD 0.8, item SD 1.0, baseline accuracy 0.6, 20 items each from a
pool of 20), at 10, 20 and 40 participants per condition: how often the 95% Wald
interval covers the true log-odds ratio, and (``--bootstrap-sims``) how often the
participant cluster bootstrap's percentile interval does, at 20 per condition.

lme4: the same simulated studies (40 per condition) fitted here and by lme4's glmer: the
largest differences and whether the two intervals ever disagree about covering the truth.

Not a test: measurements quoted in docs/designs-analysis.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analysis.designs import glmm  # noqa: E402
from analysis.designs.pipeline import run_design_analysis  # noqa: E402
from analysis.designs.power import (  # noqa: E402
    DesignPowerModel,
    design_power_search,
    simulate_study,
)
from analysis.designs.report import write_outputs  # noqa: E402
from analysis.designs.responses import read_responses_csv  # noqa: E402
from analysis.designs.simulate import simulate_responses  # noqa: E402

TARGET_S = 60.0
CONDITIONS = ("none", "normlime", "lime", "smoothgrad")


def speed(participants: int, answers: int, items: int, bootstrap_draws: int, seed: int) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for task in ("forward", "distinction", "agreement"):
            frame = simulate_responses(
                participants, task=task, conditions=CONDITIONS,
                odds_ratios={"normlime": 1.4, "lime": 1.15}, items=items,
                items_per_participant=answers, attention_checks=3, random_state=seed,
            )  # fmt: skip
            frame["completed"] = frame["completed"].map({True: "true", False: "false"})
            csv = tmp / f"{task}.csv"
            frame.to_csv(csv, index=False)
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", "from normlime_cli import main; main()", "analyze",
                 "--responses", str(csv), "--out", str(tmp / f"cli-{task}")],
                check=True, cwd=REPO, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            cli = time.perf_counter() - t0
            t0 = time.perf_counter()
            raw = read_responses_csv(csv)
            t1 = time.perf_counter()
            analysis = run_design_analysis(raw, source=str(csv))
            t2 = time.perf_counter()
            write_outputs(analysis, tmp / f"in-{task}")
            t3 = time.perf_counter()
            fits = 1 + len(analysis.by_model_correct)
            row = {"rows": len(frame), "test_answers": analysis.model.n_answers, "cli_s": cli,
                   "read_s": t1 - t0, "statistics_s": t2 - t1, "write_s": t3 - t2,
                   "fits": fits, "evaluations": analysis.model.fit.evaluations}  # fmt: skip
            out[task] = row
            verdict = "ok" if cli < TARGET_S else "OVER TARGET"
            print(
                f"{task:12s} {len(frame):,} rows ({analysis.model.n_answers:,} test answers): "
                f"whole command {cli:.1f} s [{verdict}, target {TARGET_S:.0f} s]; read "
                f"{t1 - t0:.2f} s, statistics {t2 - t1:.2f} s ({fits} fit(s), "
                f"{analysis.model.fit.evaluations} likelihood evaluations), write {t3 - t2:.2f} s"
            )
        if bootstrap_draws:
            t0 = time.perf_counter()
            analysis = run_design_analysis(raw_forward := read_responses_csv(tmp / "forward.csv"),
                                           bootstrap=bootstrap_draws, seed=0)  # fmt: skip
            took = time.perf_counter() - t0
            del raw_forward
            out["bootstrap"] = {"draws": bootstrap_draws, "seconds": took,
                                "failed": analysis.model.bootstrap["failed"]}  # fmt: skip
            print(
                f"forward with --bootstrap {bootstrap_draws}: {took:.1f} s "
                f"({took / bootstrap_draws:.2f} s per refit)"
            )
    return out


def _study(per: int, seed: int):
    model = DesignPowerModel(task="distinction", conditions=("none", "a", "b"),
                             odds_ratios=(2.0, 1.0), baseline_accuracy=0.6, item_sd=1.0,
                             participant_sd=0.8, items_per_participant=20, items=20)  # fmt: skip
    return simulate_study(model, 3 * per, np.random.default_rng([seed, per]))


def coverage(sims: int, bootstrap_sims: int, bootstrap_draws: int) -> dict:
    truth = np.log([2.0, 1.0])
    result = {}
    for per in (10, 20, 40):
        covered = np.zeros(2)
        rejected_null = failed = 0
        t0 = time.perf_counter()
        for s in range(sims):
            y, X, participant, item = _study(per, s)
            fit = glmm.fit_glmm(y, X, participant, item)
            if not fit.converged:
                failed += 1
                continue
            b, se = fit.beta[1:], fit.se[1:]
            covered += np.abs(b - truth) <= 1.959964 * se
            rejected_null += abs(b[1] / se[1]) > 1.959964
        done = sims - failed
        result[per] = {"sims": sims, "failed": failed,
                       "wald_coverage": (covered / done).tolist(),
                       "null_rejection": rejected_null / done}  # fmt: skip
        print(
            f"{per} per condition: Wald 95% coverage OR 2: {covered[0] / done:.3f}, OR 1: "
            f"{covered[1] / done:.3f}; null rejected {rejected_null / done:.3f} "
            f"({done} studies, {time.perf_counter() - t0:.0f} s)"
        )
    if bootstrap_sims:
        from analysis.designs.pipeline import cluster_bootstrap

        per = 20
        covered = np.zeros(2)
        t0 = time.perf_counter()
        for s in range(bootstrap_sims):
            y, X, participant, item = _study(per, 10_000 + s)
            fit = glmm.fit_glmm(y, X, participant, item)
            condition = np.array(["none", "a", "b"])[(X[:, 1] + 2 * X[:, 2]).astype(int)]
            boot = cluster_bootstrap(y, X, participant, item, condition, fit, ["a", "b"],
                                     draws=bootstrap_draws, seed=s, level=0.95)  # fmt: skip
            for k, c in enumerate(("a", "b")):
                lo, hi = boot["ci"][c]
                covered[k] += lo <= truth[k] <= hi
        result["bootstrap"] = {"per_condition": per, "sims": bootstrap_sims,
                               "draws": bootstrap_draws,
                               "coverage": (covered / bootstrap_sims).tolist()}  # fmt: skip
        print(
            f"bootstrap ({bootstrap_draws} resamples), {per} per condition: 95% percentile "
            f"coverage OR 2: {covered[0] / bootstrap_sims:.3f}, OR 1: "
            f"{covered[1] / bootstrap_sims:.3f} ({bootstrap_sims} studies, "
            f"{time.perf_counter() - t0:.0f} s)"
        )
    return result


LME4_LOOP = """
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
out <- NULL
for (s in sort(unique(d$sim))) {
  x <- d[d$sim == s, ]
  x$condition <- factor(x$condition, levels = c("none", "a", "b"))
  x$participant <- factor(x$participant); x$item <- factor(x$item)
  m <- glmer(y ~ condition + (1|participant) + (1|item), data = x, family = binomial)
  out <- rbind(out, c(fixef(m)[2:3], sqrt(diag(as.matrix(vcov(m))))[2:3]))
}
write.csv(out, args[2], row.names = FALSE)
"""


def lme4_agreement(sims: int) -> dict:
    import pandas as pd

    truth = np.log([2.0, 1.0])
    frames, ours = [], []
    for s in range(sims):
        y, X, participant, item = _study(40, 50_000 + s)
        fit = glmm.fit_glmm(y, X, participant, item)
        ours.append(np.r_[fit.beta[1:], fit.se[1:]])
        names = np.array(["none", "a", "b"])[(X[:, 1] + 2 * X[:, 2]).astype(int)]
        frames.append(pd.DataFrame({"sim": s, "y": y.astype(int), "participant": participant,
                                    "item": item, "condition": names}))  # fmt: skip
    ours = np.array(ours)
    with tempfile.TemporaryDirectory() as tmp:
        data, script, fitted = (Path(tmp) / n for n in ("sims.csv", "loop.R", "lme4.csv"))
        pd.concat(frames).to_csv(data, index=False)
        script.write_text(LME4_LOOP)
        t0 = time.perf_counter()
        subprocess.run(["Rscript", str(script), str(data), str(fitted)], check=True,
                       capture_output=True)  # fmt: skip
        took = time.perf_counter() - t0
        theirs = pd.read_csv(fitted).to_numpy()
    covered_ours = np.abs(ours[:, :2] - truth) <= 1.959964 * ours[:, 2:]
    covered_lme4 = np.abs(theirs[:, :2] - truth) <= 1.959964 * theirs[:, 2:]
    result = {
        "sims": sims,
        "max_abs_beta_difference": float(np.abs(ours[:, :2] - theirs[:, :2]).max()),
        "max_rel_se_difference": float(np.abs(theirs[:, 2:] / ours[:, 2:] - 1).max()),
        "median_rel_se_difference": float(np.median(np.abs(theirs[:, 2:] / ours[:, 2:] - 1))),
        "coverage_ours": covered_ours.mean(axis=0).tolist(),
        "coverage_lme4": covered_lme4.mean(axis=0).tolist(),
        "disagreements": int((covered_ours != covered_lme4).sum()),
        "lme4_seconds": took,
    }
    print(json.dumps(result, indent=2))
    return result


def power_timings() -> dict:
    out = {}
    for label, ratio in (("large, OR 2", 2.0), ("moderate, OR 1.5", 1.5)):
        model = DesignPowerModel(task="forward", conditions=("none", "normlime"),
                                 odds_ratios=(ratio,))  # fmt: skip
        t0 = time.perf_counter()
        search = design_power_search(model, simulations=500, seed=0)
        took = time.perf_counter() - t0
        out[label] = {"needed": search["needed"], "points": len(search["curve"]), "seconds": took}
        print(f"power, {label}: {search['needed']} participants, {len(search['curve'])} points, "
              f"{took:.0f} s")  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--answers", type=int, default=40)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--bootstrap-draws", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--coverage", action="store_true")
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--bootstrap-sims", type=int, default=200)
    parser.add_argument("--power", action="store_true")
    parser.add_argument("--lme4", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.coverage:
        result = coverage(args.sims, args.bootstrap_sims, args.bootstrap_draws)
    elif args.power:
        result = power_timings()
    elif args.lme4:
        result = lme4_agreement(args.sims)
    else:
        result = speed(args.participants, args.answers, args.items, args.bootstrap_draws,
                       args.seed)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
