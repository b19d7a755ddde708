"""How often the primary model's intervals and p-values reject a true null, by study size.

Simulates studies in which every method is equally preferred (equal shares, participant
heterogeneity of concentration 20, every participant attentive and complete), fits the
primary choice model with its cluster bootstrap, and counts, for each non-reference
method, how often the 95% bootstrap interval excludes 0 and how often the cluster-robust
Wald p is below 0.05.  Both should be near 5%; the rule for the analysis's small-sample
warning (analysis.study.pipeline.MIN_PARTICIPANTS) is read off this table.

    .venv/bin/python scripts/small_sample_coverage.py [--sizes 3,5,10,20,40] [--reps 200]
        [--draws 200] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.study.pipeline import run_analysis  # noqa: E402
from analysis.study.simulate import simulate_export  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="3,5,10,20,40")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    out = {}
    for g in (int(s) for s in args.sizes.split(",")):
        t0 = time.perf_counter()
        ci_rej = p_rej = disagree = total = 0
        for rep in range(args.reps):
            raw = simulate_export(
                g, preferences=(1, 1, 1, 1), p_inattentive=0.0, p_check_attentive=1.0,
                p_incomplete=0.0, random_state=10_000 * g + rep,
            )  # fmt: skip
            model = run_analysis(raw, bootstrap=args.draws, seed=rep).choice_model
            for m, (lo, hi) in model.ci.items():
                if m == model.reference or not (np.isfinite(lo) and np.isfinite(hi)):
                    continue
                out_ci = lo > 0 or hi < 0
                out_p = model.p_wald[m] < 0.05
                ci_rej += out_ci
                p_rej += out_p
                disagree += out_ci != out_p
                total += 1
        out[g] = {"contrasts": total, "ci_excludes_0": ci_rej / total,
                  "wald_p_below_0.05": p_rej / total, "disagree": disagree / total}  # fmt: skip
        print(f"G={g:3d}: {total} null contrasts; bootstrap CI excludes 0 in "
              f"{ci_rej / total:.1%}, Wald p < 0.05 in {p_rej / total:.1%}, they disagree in "
              f"{disagree / total:.1%} ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
