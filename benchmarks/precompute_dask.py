"""Local LIME explanations on a Dask LocalCluster: 1 worker vs 2 workers, and the local path.

    .venv/bin/python benchmarks/precompute_dask.py [--per-class 12] [--samples 1000] [--json OUT]

The same explanations (the stable preset's K and N, ``--per-class`` images per digit,
cache off) are computed three ways in one run: in this process (precompute's own path:
one torch thread pool plus the LASSO fit threads), and on a LocalCluster of 1 and of 2
worker processes with 1 thread each.  Reports wall time per run and explanations/s, and
checks the maps agree.  The figure is honest for this machine: 2 cores, so 2 workers can
at best halve the 1-worker time, and the local path already uses both cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def run(out: Path, args, **kw):
    from explainers.data import load_mnist
    from explainers.precompute import precompute

    t0 = time.perf_counter()
    result = precompute(
        model_path=REPO / "assets/model/mnist-cnn.pt",
        data=load_mnist("embedded"),
        out_dir=out,
        methods=("normlime", "lime"),
        preset="stable",
        per_class=args.per_class,
        samples=args.samples,
        use_cache=False,
        compile_model=False,
        progress=False,
        log=lambda line: None,
        **kw,
    )
    return result, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=12)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from distributed import LocalCluster

    from explainers.lime import retain_freed_memory

    retain_freed_memory()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        local, t_local = run(Path(tmp) / "local", args)
        n = local.n_local
        rows.append({"run": "local (this process)", "wall_s": round(t_local, 1)})
        for workers in (1, 2):
            with LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster:
                res, t = run(
                    Path(tmp) / f"dask{workers}", args, scheduler=cluster.scheduler_address
                )
            r = min(
                np.corrcoef(local.maps["normlime"][d].ravel(), res.maps["normlime"][d].ravel())[
                    0, 1
                ]
                for d in range(10)
            )
            rows.append(
                {"run": f"Dask LocalCluster, {workers} worker(s) x 1 thread", "wall_s": round(t, 1),
                 "min_r_vs_local": round(float(r), 6)}
            )  # fmt: skip
    for row in rows:
        row["explanations_per_s"] = round(n / row["wall_s"], 2)
    print(f"{n} local explanations, K=100, N={args.samples}")
    for row in rows:
        extra = f", maps r >= {row['min_r_vs_local']}" if "min_r_vs_local" in row else ""
        print(f"  {row['run']:<40} {row['wall_s']:>7} s  {row['explanations_per_s']:>6}/s{extra}")
    speedup = rows[1]["wall_s"] / rows[2]["wall_s"]
    print(f"2 workers vs 1: {speedup:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": n, "rows": rows, "speedup": speedup}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
