"""SmoothGrad-squared / VarGrad: the hand-written batched version against Captum.

Measures, side by side in one run on the shipped model and the same images, the median
wall time of

* Captum ``NoiseTunnel(Saliency(model))`` as documented (``nt_samples_batch_size`` unset:
  all N x n_samples noisy images in one pass), once per method;
* the same with Captum's ``nt_samples_batch_size`` set so that a pass holds about as many
  images as ours (Captum's best case);
* ours, ``SmoothGradSquared`` / ``VarGrad`` (``batch_size`` noisy samples per pass);
* ours, both maps from one set of noisy gradients (``noisy_gradient_maps``), against the
  two Captum calls needed for the two maps.

Runs are interleaved (A B C D, A B C D, ...) so that load from other processes on the
machine hits every variant alike.  Usage::

    .venv/bin/python benchmarks/gradients.py [--images 10] [--samples 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from captum.attr import NoiseTunnel, Saliency  # noqa: E402

from explainers.data import as_float, load_mnist, stratified_sample  # noqa: E402
from explainers.gradients import (  # noqa: E402
    DEFAULT_BATCH_SIZE,
    SmoothGradSquared,
    VarGrad,
    noisy_gradient_maps,
)
from explainers.model import load  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "assets" / "model" / "mnist-cnn.pt"))
    ap.add_argument("--images", type=int, default=10, help="images (1 per digit, cycled)")
    ap.add_argument("--samples", type=int, default=100, help="noise samples per image")
    ap.add_argument("--sigma", type=float, default=0.3)
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sweep", action="store_true", help="also time ours at other batch sizes")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load(args.model, map_location=device)
    data = load_mnist("embedded")
    per_class = -(-args.images // 10)
    idx = stratified_sample(data.test_labels, per_class, random_state=0)[: args.images]
    x = as_float(data.test_images[idx]).to(device)
    y = torch.from_numpy(data.test_labels[idx]).to(device)
    n, s = args.images, args.samples
    captum_chunk = max(1, args.batch_size // n)

    nt = NoiseTunnel(Saliency(model))

    def captum(kind, chunk=None):
        return nt.attribute(
            x, nt_type=kind, nt_samples=s, nt_samples_batch_size=chunk, stdevs=args.sigma,
            target=y,
        )

    sg = SmoothGradSquared(model, s, args.sigma, args.batch_size, random_state=0)
    vg = VarGrad(model, s, args.sigma, args.batch_size, random_state=0)
    variants = {
        "captum smoothgrad_sq (one pass)": lambda: captum("smoothgrad_sq"),
        "captum vargrad (one pass)": lambda: captum("vargrad"),
        f"captum smoothgrad_sq (nt_samples_batch_size={captum_chunk})": lambda: captum(
            "smoothgrad_sq", captum_chunk
        ),
        f"captum vargrad (nt_samples_batch_size={captum_chunk})": lambda: captum(
            "vargrad", captum_chunk
        ),
        f"ours SmoothGradSquared (batch_size={args.batch_size})": lambda: sg.attribute(x, y),
        f"ours VarGrad (batch_size={args.batch_size})": lambda: vg.attribute(x, y),
        "ours both maps, one set of gradients": lambda: noisy_gradient_maps(
            model, x, y, s, args.sigma, args.batch_size, random_state=0
        ),
    }
    if args.sweep:
        for bs in (50, 100, 400, 1000):
            if bs != args.batch_size:
                est = SmoothGradSquared(model, s, args.sigma, bs, random_state=0)
                variants[f"ours SmoothGradSquared (batch_size={bs})"] = (
                    lambda est=est: est.attribute(x, y)
                )

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    load_before = f"{os.getloadavg()[0]:.1f}"
    for fn in variants.values():  # warm-up
        fn()
    times = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)

    med = {k: statistics.median(v) for k, v in times.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    print(
        f"# {n} images x {s} noise samples, sigma={args.sigma}, device={device}, "
        f"torch threads={torch.get_num_threads()}, repeats={args.repeats} (median), "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"load average before/after {load_before} / {os.getloadavg()[0]:.1f}"
    )
    print(f"{'variant':58s} {'wall':>8s}     {'noisy/s':>8s}   {'CPU time':>8s}")
    for name, t in med.items():
        print(f"{name:58s} {t:8.3f} s   {n * s / t:8.0f}   {cpu_med[name]:8.3f} s")
    keys = list(med)
    cap_sg, cap_vg, cap_sg_b, cap_vg_b, our_sg, our_vg, our_both = (med[k] for k in keys[:7])
    print("speed-ups are ratios of median wall times")
    print(f"speed-up SmoothGrad^2 vs Captum one pass:   {cap_sg / our_sg:5.2f}x")
    print(f"speed-up VarGrad      vs Captum one pass:   {cap_vg / our_vg:5.2f}x")
    print(f"speed-up SmoothGrad^2 vs Captum same batch: {cap_sg_b / our_sg:5.2f}x")
    print(f"speed-up VarGrad      vs Captum same batch: {cap_vg_b / our_vg:5.2f}x")
    print(f"speed-up both maps vs two Captum one-pass calls: {(cap_sg + cap_vg) / our_both:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
