"""The default preset from full MNIST, whole command: wall time, peak memory, time split.

Issue 20's target: ``normlime precompute --preset stable`` on full MNIST in at most 60 s
on the 2-core machine, peak memory under 4 GB, with the share of the batched local fits
reported.  Runs the command as a user would (a child process, no cache), then reads the
time split the manifest records.

    .venv/bin/python benchmarks/precompute_stable.py --data ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mnist"))
    ap.add_argument("--preset", default="stable")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "maps"
        cmd = [sys.executable, "-m", "normlime_cli", "precompute", "--data", args.data,
               "--preset", args.preset, "--seed", str(args.seed), "--no-cache", "--quiet",
               "--out", str(out)]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO)
        wall = time.perf_counter() - t0
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        manifest = json.loads((out / "manifest.json").read_text())
    local = manifest["local_explanations"]
    split = local.get("time_split_s", {})
    pool = manifest["methods"]["normlime"]["parameters"].get("neighbour_pool", {})
    lime_s = local["wall_time_s"]
    per_image = {
        m: info["wall_time_s"]
        for m, info in manifest["methods"].items()
        if m not in ("normlime", "lime")
    }
    rows = {
        "command": " ".join(cmd[2:]),
        "wall_s": round(wall, 1),
        "peak_rss_gb": round(peak_gb, 2),
        "local_explanations": local["count"],
        "lime_s": lime_s,
        "model_outputs_on_pool_s": pool.get("model_outputs_s"),
        "neighbour_draws_s": split.get("samples_s"),
        "local_fits_s": split.get("fits_s"),
        "fits_share_of_command": round(split.get("fits_s", 0.0) / wall, 3),
        "per_image_methods_s": per_image,
        "manifest_wall_s": manifest["wall_time_s"],
    }
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
