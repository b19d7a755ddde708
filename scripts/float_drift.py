"""How much do the shipped gradient class maps move with the CPU's floating-point kernels?

A test that regenerates the shipped SmoothGrad/VarGrad maps must allow for the float32
differences between machines (another SIMD width, another oneDNN kernel, another thread
split of a reduction) but nothing more.  On one machine those differences can be provoked:
this script regenerates the maps with 1 and 2 threads, with and without oneDNN (mkldnn)
convolutions (and, with ``--float64``, the whole model in float64: slow, ~10 min), and
prints the largest deviation from the shipped maps (relative to each map's maximum, and
value by value) and the Pearson r of the displayed maps.

    .venv/bin/python scripts/float_drift.py --bundle assets/maps/mnist
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import explainers.precompute as precompute_module  # noqa: E402
from explainers.bundle import read_bundle  # noqa: E402
from explainers.data import load_mnist  # noqa: E402
from explainers.stability import as_displayed, pearson_per_class  # noqa: E402

METHODS = ("smoothgrad", "vargrad")


@contextlib.contextmanager
def configured(threads: int, mkldnn: bool, float64: bool):
    before = torch.get_num_threads()
    load = precompute_module.load
    torch.set_num_threads(threads)
    if float64:
        precompute_module.load = lambda *a, **k: load(*a, **k).double()
        torch.set_default_dtype(torch.float64)
    try:
        with torch.backends.mkldnn.flags(enabled=mkldnn):
            yield
    finally:
        torch.set_num_threads(before)
        torch.set_default_dtype(torch.float32)
        precompute_module.load = load


def regenerate(bundle, data, threads, mkldnn, float64):
    as_float = precompute_module.as_float
    if float64:
        precompute_module.as_float = lambda x: as_float(x).double()
    try:
        with configured(threads, mkldnn, float64), tempfile.TemporaryDirectory() as tmp:
            result = precompute_module.precompute(
                model_path=REPO / "assets" / "model" / "mnist-cnn.pt",
                data=data,
                out_dir=Path(tmp) / "b",
                methods=METHODS,
                preset=bundle.manifest["generator"]["preset"],
                seed=bundle.manifest["seed"],
                progress=False,
                use_cache=False,
                log=lambda line: None,
            )
    finally:
        precompute_module.as_float = as_float
    return result.maps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bundle", default=str(REPO / "assets" / "maps" / "mnist"))
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    ap.add_argument("--float64", action="store_true", help="also run the model in float64")
    args = ap.parse_args(argv)
    bundle = read_bundle(args.bundle)
    data = load_mnist("embedded")
    rows = []
    configs = [(2, True, False), (1, True, False), (2, False, False), (1, False, False)]
    for threads, mkldnn, float64 in configs + ([(2, True, True)] if args.float64 else []):
        maps = regenerate(bundle, data, threads, mkldnn, float64)
        for m in METHODS:
            ref = bundle.maps[m].astype(np.float64).reshape(10, -1)
            got = maps[m].astype(np.float64).reshape(10, -1)
            peak = ref.max(1, keepdims=True)
            rel_to_max = float((np.abs(got - ref) / peak).max())
            big = ref > 1e-3 * peak  # value-by-value only where the value is not tiny
            rel_value = float((np.abs(got - ref)[big] / ref[big]).max())
            r = pearson_per_class(as_displayed(got), as_displayed(ref))
            row = {"threads": threads, "mkldnn": mkldnn, "float64": float64, "method": m,
                   "max_abs_diff_over_map_max": rel_to_max,
                   "max_rel_diff_where_value_ge_1e-3_max": rel_value,
                   "displayed_r_min": float(r.min())}
            rows.append(row)
            print(f"threads={threads} mkldnn={mkldnn!s:<5} float64={float64!s:<5} {m:<10} "
                  f"max|d|/max {rel_to_max:.2e}  max rel {rel_value:.2e}  "
                  f"displayed r min {r.min():.8f}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
