#!/usr/bin/env bash
# One short, prepared GPU check (the precompute-engine issue, item 3).  Run it on a lent GPU
# machine from the repository root, after `make .venv/.installed`:
#
#     DATA=path/to/mnist bash benchmarks/gpu_check.sh   # ~6 minutes; results in $OUT or /tmp
#
# It runs train, precompute, kar and occlusion end to end with --device cuda, times them,
# records the GPU's name, and compares the GPU's stable-preset maps with the shipped bundle
# (made on a CPU from the same model, full MNIST, preset and seed): the class maps must
# correlate r >= 0.999 per digit (the same tolerance as lower precision,
# docs/explainers-lime.md).  DATA is full MNIST (default ../shared/data/mnist): the stable
# preset draws its neighbours from the 60,000 training images.  The noise preset (forward
# passes per sample) is timed on 100 explanations per digit at one pass per explanation.
# On a machine without CUDA it says so and exits 2 before doing anything.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/normlime-gpu}
mkdir -p "$OUT"
PY=.venv/bin/python
N=.venv/bin/normlime
$PY - <<'PY' || exit 2
import sys, torch
if not torch.cuda.is_available():
    print("no CUDA device here: nothing to check", file=sys.stderr)
    sys.exit(2)
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PY
t() { local start=$SECONDS; "$@"; echo "  -> $(( SECONDS - start )) s: $*" | tee -a "$OUT/times.txt"; }
t $N train --data embedded --epochs 1 --device cuda --out "$OUT/model.pt"
DATA=${DATA:-../shared/data/mnist}
t $N precompute --model assets/model/mnist-cnn.pt --data "$DATA" --preset stable --seed 0 \
    --device cuda --no-cache --quiet --out "$OUT/maps-stable"
# the Gaussian-noise reading, forward-bound: one pass per explanation (timed, not compared)
t $N precompute --model assets/model/mnist-cnn.pt --data embedded --preset noise --seed 0 \
    --device cuda --no-cache --quiet --batch-size 1000 --methods normlime,lime \
    --per-class 100 --out "$OUT/maps-noise-b1000"
t $N kar --preset smoke --data embedded --device cuda --no-progress --out "$OUT/kar"
t $N occlusion --preset smoke --data embedded --device cuda --no-progress --out "$OUT/occlusion"
$PY - "$OUT/maps-stable" <<'PY'
import sys
import numpy as np
from explainers.bundle import read_bundle
cpu = read_bundle("assets/maps/mnist")
worst = {}
for path in sys.argv[1:]:
    gpu = read_bundle(path)
    for method in gpu.maps:
        a, b = cpu.maps[method].reshape(10, -1), gpu.maps[method].reshape(10, -1)
        r = min(float(np.corrcoef(a[d], b[d])[0, 1]) for d in range(10))
        worst[f"{path}:{method}"] = r
        print(f"{path} {method:<11} GPU vs CPU class maps: min r over digits = {r:.5f}")
bad = [m for m, r in worst.items() if r < 0.999]
print("agreement within r >= 0.999:", "yes" if not bad else f"NO ({', '.join(bad)})")
sys.exit(1 if bad else 0)
PY
