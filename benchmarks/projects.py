"""Precompute time of study projects beyond MNIST: the 8x8 digits example, a ResNet-18.

    .venv/bin/python benchmarks/projects.py [--only digits|resnet] [--device cpu|cuda]
        [--resnet-lime-per-class 2] [--resnet-samples 500] [--json OUT]

* digits: the project `normlime init-project` writes (scikit-learn's 8x8 digits, a small
  CNN, NormLIME + Integrated Gradients + Saliency), trained and precomputed as written;
* resnet: torchvision's ResNet-18 (random weights: the speed does not depend on them,
  and no download is needed) on 100 random 3 x 224 x 224 images, 10 per class for 10
  classes; NormLIME on a 14 x 14 grid of 16-pixel superpixels (LIME's hide/keep
  perturbation), Integrated Gradients (32 steps), Saliency, GradCAM on layer4 and
  SmoothGrad (20 draws), each class map the mean over the 10 images of its class.

Every method's own wall time comes from the bundle's manifest; the forward throughput of
the network at the batch size LIME uses is measured beside it, so the LIME figure can be
scaled to other sample counts.  Run alone: two cores are shared by everything here.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RESNET_DATA = '''
import numpy as np


def random_images(n_per_class=10, n_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_per_class * n_classes, 3, 224, 224), dtype=np.uint8)
    return images, np.repeat(np.arange(n_classes), n_per_class)
'''

RESNET_MODEL = '''
import torchvision


def build():
    return torchvision.models.resnet18(weights=None, num_classes=10)
'''

RESNET_TOML = '''
[project]
name = "resnet18-random"

[model]
callable = "bench_resnet_model:build"

[model.input]
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]

[dataset]
kind = "callable"
callable = "bench_resnet_data:random_images"

[classes]
names = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"]

[[methods]]
name = "normlime"
kind = "normlime"

[[methods]]
name = "integrated_gradients"
kind = "captum"
attribution = "IntegratedGradients"
attribute_args = {{ n_steps = 32, internal_batch_size = 32 }}

[[methods]]
name = "saliency"
kind = "captum"
attribution = "Saliency"

[[methods]]
name = "gradcam"
kind = "captum"
attribution = "LayerGradCam"
layer = "layer4"

[[methods]]
name = "smoothgrad"
kind = "smoothgrad"
n_samples = 20
sigma = 0.15

[lime]
per_class = {lime_per_class}
n_samples = {samples}
n_features = 20
features = {{ kind = "grid", cell = 16 }}
perturbation = "hide"

[per_image]
per_class = 10

[survey]
methods = ["normlime", "integrated_gradients", "saliency", "gradcam", "smoothgrad"]
attention_checks = 0
display = "overlay"
'''


def forward_rate(model, shape, batch: int, device) -> float:
    import torch

    x = torch.rand((batch, *shape), device=device)
    with torch.inference_mode():
        model(x)
        t0 = time.perf_counter()
        for _ in range(3):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return 3 * batch / (time.perf_counter() - t0)


def run_project(root: Path, device, train: bool) -> dict:
    from explainers.project import load_project
    from explainers.project_precompute import precompute_project
    from explainers.project_train import train_project

    project = load_project(root)
    t_train = None
    if train:
        t0 = time.perf_counter()
        train_project(project, device=device, log=lambda line: None)
        t_train = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    result = precompute_project(
        project, device=device, use_cache=False, progress=False, log=lambda line: None
    )
    wall = time.perf_counter() - t0
    man = result.manifest
    local = man.get("local_explanations") or {}
    return {
        "train_s": t_train,
        "precompute_s": round(wall, 2),
        "methods_s": {m: man["methods"][m].get("wall_time_s") for m in result.maps},
        "local_explanations": local.get("count"),
        "lime_samples": man["generator"]["lime"]["n_samples"],
        "map_shape": man["map_shape"],
        "test_accuracy": man["model"].get("test_accuracy"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["digits", "resnet"], default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--resnet-lime-per-class", type=int, default=2)
    ap.add_argument("--resnet-samples", type=int, default=500)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch

    from explainers.devices import pick_device
    from explainers.lime import retain_freed_memory
    from explainers.project import init_project

    retain_freed_memory()
    device = pick_device(args.device)
    out = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.only in (None, "digits"):
            init_project(tmp / "digits")
            out["digits"] = run_project(tmp / "digits", str(device), train=True)
            print("digits:", json.dumps(out["digits"]), flush=True)
        if args.only in (None, "resnet"):
            root = tmp / "resnet"
            root.mkdir()
            (root / "bench_resnet_data.py").write_text(textwrap.dedent(RESNET_DATA))
            (root / "bench_resnet_model.py").write_text(textwrap.dedent(RESNET_MODEL))
            (root / "study.toml").write_text(RESNET_TOML.format(
                lime_per_class=args.resnet_lime_per_class, samples=args.resnet_samples))
            import torchvision

            net = torchvision.models.resnet18(weights=None, num_classes=10).to(device).eval()
            rate = forward_rate(net, (3, 224, 224), 200 if device.type == "cuda" else 50, device)
            out["resnet"] = {"forward_images_per_s": round(rate, 1),
                             **run_project(root, str(device), train=False)}  # fmt: skip
            print("resnet:", json.dumps(out["resnet"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
