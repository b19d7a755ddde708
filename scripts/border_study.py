"""Where does the LIME family's mass in the image border come from?

MNIST digits sit in the central 20x20 box, so the 3-pixel border is blank in every image.
Two candidate causes of map mass there:

* clipping: LIME's Gaussian noise is clipped to [0, 1], so a blank pixel only ever moves
  upwards; its perturbation has a smaller spread (about 0.29 instead of 0.5 for sigma
  0.5), and a least-squares coefficient's noise grows as that spread shrinks;
* the model: the convolutions' zero padding and the border's absence from the training
  data leave the network's response there unconstrained.

The script explains the same images with clipping and without it (``clip=None``: noisy
pixels may leave [0, 1]) for a dense (K = 784) and a sparse K, and reports the share of
the displayed NormLIME and LIME class-map mass in the border, next to the border's share
of the area.

    .venv/bin/python scripts/border_study.py --per-class 5 --ks 784,50
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from explainers.data import as_float, image_pool, load_mnist  # noqa: E402
from explainers.inspect import border_mask  # noqa: E402
from explainers.lime import LocalLime, inference_forward  # noqa: E402
from explainers.model import load  # noqa: E402
from explainers.normlime import display_class_maps  # noqa: E402
from explainers.precompute import select_lime_images  # noqa: E402
from explainers.stability import as_displayed  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default="embedded")
    ap.add_argument("--model", default=str(REPO / "assets" / "model" / "mnist-cnn.pt"))
    ap.add_argument("--per-class", type=int, default=5)
    ap.add_argument("--ks", default="784,50")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    data = load_mnist(args.data)
    pool = image_pool(data, "all")
    index = select_lime_images(pool.labels, args.per_class, args.seed)
    x = as_float(pool.images[index])
    forward = inference_forward(load(args.model))
    with torch.inference_mode():
        pred = forward(x).argmax(1).numpy()
    border = border_mask().ravel()
    print(f"border: {border.mean():.1%} of the pixels; {len(index)} images, "
          f"{args.samples} samples each")
    for k in (int(t) for t in args.ks.split(",")):
        for clip in ((0.0, 1.0), None):
            lime = LocalLime(forward, n_samples=args.samples, n_features=k, clip=clip,
                             random_state=args.seed)
            w = lime.explain(x, torch.as_tensor(pred)).weights
            maps = display_class_maps(w, pred, 10)
            abs_w = np.abs(w)
            line = [f"K={k:<4} clip={'[0,1]' if clip else 'none':<5}"]
            for m in ("normlime", "lime"):
                shown = as_displayed(maps[m])
                line.append(f"{m} border share {(shown * border).sum() / shown.sum():.3f}")
            ratio = abs_w[:, border].mean() / abs_w[:, ~border].mean()
            line.append(f"mean |w| border/interior {ratio:.2f}")
            chosen = np.count_nonzero(w[:, border]) / max(1, np.count_nonzero(w))
            line.append(f"selected in border {chosen:.3f}")
            print("  ".join(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
