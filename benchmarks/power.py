"""Benchmark: ``normlime power`` with 1,000 simulations per point (target: under 2 minutes).

    .venv/bin/python benchmarks/power.py [--simulations 1000]

Times the whole command in a fresh interpreter for three assumed effects: the paper's
vote shares, a moderate effect and a small one (which needs large studies, so its points
cost the most).  Not a test: a performance target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 120.0
CASES = {
    "paper shares": "0.566,0.264,0.079,0.091",
    "moderate": "0.35,0.25,0.2,0.2",
    "small": "0.3,0.28,0.21,0.21",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=1000)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            out = Path(tmp) / name.replace(" ", "-")
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", "from normlime_cli import main; main()", "power",
                 "--shares", CASES[name], "--simulations", str(args.simulations),
                 "--out", str(out)],
                check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            wall = time.perf_counter() - t0
            power = json.loads((out / "power.json").read_text())
            verdict = "PASS" if wall < TARGET_S else "FAIL"
            print(
                f"{name} ({CASES[name]}): {len(power['curve'])} points, contrast needs "
                f"{power['participants_needed']}, omnibus {power['omnibus']['participants_needed']}"
                f"; {wall:.1f} s [target < {TARGET_S:.0f} s: {verdict}]"
            )


if __name__ == "__main__":
    main()
