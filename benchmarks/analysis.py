"""Benchmark: ``normlime analyze`` on large simulated studies, with the primary choice
model and its 1,000 bootstrap resamples (targets: 1,000 participants in under 30 s,
10,000 in under 5 minutes).

    .venv/bin/python benchmarks/analysis.py [--participants 1000,10000] [--repeats 1]

Writes a seeded simulated export (analysis.study.simulate, the study server's CSV format, with
attention-check failures and incomplete surveys) to a temporary directory, then times

* ``cli``: the whole command in a fresh interpreter (``normlime analyze --votes ... --out
  ...``: Python start-up, imports, CSV parsing, validation, filtering, all tests, plots,
  report), i.e. what a user waits for;
* the in-process stages: read CSV, validate + filter + statistics (run_analysis), write
  outputs (JSON, CSVs, two PNGs, report.md).

Reports the median over ``--repeats`` runs.  Not a test: a performance target.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analysis.study.pipeline import run_analysis  # noqa: E402
from analysis.study.report import write_outputs  # noqa: E402
from analysis.study.simulate import simulate_export  # noqa: E402
from analysis.study.votes import read_votes_csv  # noqa: E402

#: seconds allowed for the whole command, by study size (issue 12)
TARGETS_S = {1_000: 30.0, 10_000: 300.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", default="1000,10000")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for n in [int(v) for v in args.participants.split(",")]:
        run(n, args.repeats, args.seed)


def run(participants: int, repeats: int, seed: int) -> None:
    args = argparse.Namespace(participants=participants, repeats=repeats, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        frame = simulate_export(args.participants, random_state=args.seed)
        for column in ("is_attention_check", "completed"):
            frame[column] = frame[column].map({True: "true", False: "false"})
        frame["passed"] = frame["passed"].map({True: "true", False: "false"}).fillna("")
        csv = tmp / "votes.csv"
        frame.to_csv(csv, index=False)
        print(
            f"simulated {args.participants} participants, {len(frame)} answers "
            f"({csv.stat().st_size / 1e6:.1f} MB CSV) in {time.perf_counter() - started:.2f} s"
        )

        cli_times, read_times, analyse_times, write_times = [], [], [], []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", "from normlime_cli import main; main()", "analyze",
                 "--votes", str(csv), "--out", str(tmp / f"cli{i}")],
                check=True, cwd=REPO, stdout=subprocess.DEVNULL,
            )
            cli_times.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            raw = read_votes_csv(csv)
            t1 = time.perf_counter()
            analysis = run_analysis(raw, source=str(csv))
            t2 = time.perf_counter()
            write_outputs(analysis, tmp / f"lib{i}")
            t3 = time.perf_counter()
            read_times.append(t1 - t0)
            analyse_times.append(t2 - t1)
            write_times.append(t3 - t2)

    med = statistics.median
    sel = analysis.selection
    model = analysis.choice_model
    print(f"kept {sel.kept} of {sel.total}; F = {analysis.anova.F:.1f}; choice model "
          f"normlime {model.coef['normlime']:.3f} {model.ci['normlime']}, "
          f"{model.bootstrap['n']} resamples")
    print(f"in-process: read CSV {med(read_times):.2f} s, validate+filter+statistics "
          f"{med(analyse_times):.2f} s, write report+plots {med(write_times):.2f} s")
    total = med(cli_times)
    target = TARGETS_S.get(args.participants)
    verdict = "no target" if target is None else "PASS" if total < target else "FAIL"
    print(f"normlime analyze, {args.participants} participants, whole command (median of "
          f"{args.repeats}): {total:.2f} s [target < {target} s: {verdict}]")


if __name__ == "__main__":
    main()
