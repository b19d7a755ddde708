"""Occlusion (Zhang & Gao 2020, IV.B.2) and RISE deletion/insertion (Petsiuk et al. 2018).

For correctly classified test images, pixels are occluded cumulatively in descending order
of a method's per-image importance and the model's output is tracked.  Choices (the
protocol notes mark them [DECIDE]; docs/benchmarks.md repeats them):

* target class = the model's prediction on the unmodified image (RISE's convention; the
  images are correctly classified, so it is also the label);
* order: descending ``|importance|`` (``--order abs``, default) or descending signed
  importance (``--order signed``, RISE's order); ties go to the lower pixel index first
  (stable sort).  NormLIME has no per-image map: its class ranking S_y (eq. 9) of the
  target class, built from local LIME explanations of training images, orders every
  image of that class;
* occlusion value: the MNIST training mean 0.1307 (``--value mean``, default; 0 after the
  model's standardisation, RISE's zero substrate of the normalised tensor, and KAR's
  replacement value) or 0;
* schedule: ``step`` pixels per step (default 28, one row's worth), ``n_steps =
  ceil(784 / step)``, recorded at ``n_steps + 1`` points from the clean image to the fully
  occluded one;
* metrics at each point: ``p_target`` (softmax probability of the target), the entropy
  ``-sum_c p_c log p_c`` (natural log) over the ``top_k`` classes with the largest
  probabilities on the clean image (a fixed set; Zhang & Gao use all 10 on MNIST) and the
  population standard deviation (ddof 0) of those ``top_k`` probabilities;
* RISE: the deletion curve is ``p_target`` of the occlusion game above (same order, same
  substrate); the insertion curve starts from the blurred image (Gaussian kernel 11,
  sigma 5, as RISE) and inserts the clean pixels in the same order.  AUC = RISE's
  trapezoid ``(sum - first/2 - last/2) / (len - 1)``.

Better rankings give a lower deletion AUC (faster drop of ``p_target``), a higher entropy
AUC, a lower std AUC and a higher insertion AUC.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .jobs import Job, JobStore, derive_seed, run_jobs

__all__ = [
    "OcclusionSettings",
    "auc",
    "descending_order",
    "game_batch",
    "game_curves",
    "gaussian_blur",
    "output_metrics",
    "occlusion_job",
    "run_occlusion",
    "OCCLUSION_METHODS",
    "METRICS",
]

OCCLUSION_METHODS = (
    "inputxgrad",
    "std",
    "smoothgrad",
    "vargrad",
    "lime",
    "normlime",
    "shap",
    "random",
)
#: recorded curves, and whether a better ranking makes their AUC lower
METRICS = {"p_target": "lower", "entropy": "higher", "std_topk": "lower", "insertion": "higher"}
PIXEL_MEAN = 0.1307


@dataclass(frozen=True)
class OcclusionSettings:
    methods: tuple[str, ...] = OCCLUSION_METHODS
    images: int = 100
    step: int = 28
    top_k: int = 10
    order: str = "abs"
    value: str = "mean"
    explain_per_class: int = 100  # training images per class for NormLIME's class ranking
    blur_klen: int = 11
    blur_sigma: float = 5.0
    method_params: dict = field(default_factory=dict)
    seed: int = 0
    device: str | None = None

    def validate(self) -> OcclusionSettings:
        bad = [m for m in self.methods if m not in OCCLUSION_METHODS]
        if bad:
            raise ValueError(
                f"unknown method(s) {', '.join(bad)}; choose from {', '.join(OCCLUSION_METHODS)}"
            )
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise ValueError("methods must be a non-empty list without repeats")
        if self.images < 1:
            raise ValueError("images must be at least 1")
        if not 1 <= self.step <= 784:
            raise ValueError("step must be between 1 and 784 pixels")
        if not 2 <= self.top_k <= 10:
            raise ValueError("top-k must be between 2 and 10")
        if self.order not in ("abs", "signed"):
            raise ValueError("order must be abs or signed")
        if self.value not in ("mean", "zero"):
            raise ValueError("value must be mean or zero")
        if self.explain_per_class < 1:
            raise ValueError("explain-per-class must be at least 1")
        return self

    @property
    def occlusion_value(self) -> float:
        return PIXEL_MEAN if self.value == "mean" else 0.0

    def result_config(self) -> dict:
        d = asdict(self)
        for k in ("methods", "images", "device"):
            d.pop(k)
        return d


# --------------------------------------------------------------------------- pure parts


def auc(curve) -> float:
    """RISE's AUC: the trapezoid rule on [0, 1] with uniform spacing."""
    arr = np.asarray(curve, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError("a curve needs at least two points")
    return float((arr.sum() - arr[0] / 2 - arr[-1] / 2) / (arr.size - 1))


def descending_order(scores, order: str = "abs") -> np.ndarray:
    """Pixel indices from most to least important; ties: lower index first (stable)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    key = -np.abs(s) if order == "abs" else -s
    return np.argsort(key, kind="stable")


def game_batch(start, finish, order: np.ndarray, step: int):
    """The ``n_steps + 1`` images of a deletion/insertion game, as one batch.

    ``start`` and ``finish`` (C, H, W); at point ``t`` the first ``min(t * step, H*W)``
    spatial positions of ``order`` hold ``finish`` (all channels together), the others
    ``start``.
    """
    import torch

    c, h, w = start.shape
    hw = h * w
    n_steps = math.ceil(hw / step)
    rank = torch.empty(hw, dtype=torch.long)
    rank[torch.as_tensor(order, dtype=torch.long)] = torch.arange(hw)
    counts = torch.clamp(torch.arange(n_steps + 1) * step, max=hw)
    switched = (rank[None, :] < counts[:, None]).to(start.device)  # (n_steps+1, hw)
    switched = switched.view(n_steps + 1, 1, h, w)
    return torch.where(switched, finish.unsqueeze(0), start.unsqueeze(0)), counts.numpy()


def output_metrics(probs: np.ndarray, target: int, top_classes: np.ndarray) -> dict:
    """p_target, entropy and SD of the selected classes' probabilities, per row."""
    probs = np.asarray(probs, dtype=np.float64)
    sel = probs[:, top_classes]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(sel > 0, sel * np.log(sel), 0.0).sum(axis=1)
    return {
        "p_target": probs[:, target],
        "entropy": ent,
        "std_topk": sel.std(axis=1, ddof=0),
    }


def gaussian_blur(x, klen: int = 11, sigma: float = 5.0):
    """RISE's ``gkern`` blur (per channel, zero padding ``klen // 2``)."""
    import torch
    import torch.nn.functional as F

    ax = np.arange(klen) - (klen - 1) / 2.0
    g = np.exp(-0.5 * (ax / sigma) ** 2)
    k2 = np.outer(g, g)
    k2 /= k2.sum()
    c = x.shape[-3]
    kernel = torch.as_tensor(k2, dtype=x.dtype, device=x.device).expand(c, 1, klen, klen)
    return F.conv2d(x.unsqueeze(0), kernel, padding=klen // 2, groups=c)[0]


def game_curves(
    forward,
    x,
    scores,
    step: int,
    value: float,
    target: int | None = None,
    top_k: int = 10,
    order: str = "abs",
    insertion_start=None,
) -> dict:
    """All curves for one image (C, H, W): the occlusion/deletion game and insertion.

    ``forward`` maps a batch to class probabilities.  ``target`` defaults to the
    prediction on ``x``.  ``insertion_start`` defaults to the RISE blur of ``x``.
    """
    import torch

    idx = descending_order(scores, order)
    substrate = torch.full_like(x, float(value))
    with torch.inference_mode():
        clean = forward(x.unsqueeze(0))[0].detach().cpu().numpy()
        if target is None:
            target = int(clean.argmax())
        top = np.argsort(-clean, kind="stable")[:top_k]
        deletion, counts = game_batch(x, substrate, idx, step)
        probs = forward(deletion).detach().cpu().numpy()
        start = gaussian_blur(x) if insertion_start is None else insertion_start
        insertion, _ = game_batch(start, x, idx, step)
        ins = forward(insertion).detach().cpu().numpy()[:, target]
    out = output_metrics(probs, target, top)
    out["insertion"] = ins
    out["n_occluded"] = counts
    out["target"] = target
    return out


# --------------------------------------------------------------------------- jobs


def _model(ctx: dict, device):
    import torch

    from explainers.model import CNNConfig, MnistCNN

    model = MnistCNN(CNNConfig.from_dict(ctx["model_config"]))
    model.load_state_dict({k: torch.tensor(np.array(v)) for k, v in ctx["model_state"].items()})
    return model.to(device).eval()


_MODEL_CACHE: dict = {}


def occlusion_job(ctx: dict, job: Job) -> dict:
    """Explain one image with one method and play the occlusion games on it."""
    import torch

    from explainers.data import as_float
    from explainers.devices import pick_device

    from .rankings import explainer_for

    device = pick_device(ctx.get("device"))
    key = (ctx["token"], str(device))
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = _model(ctx, device)
    model = _MODEL_CACHE[key]
    p = job.params
    i = p["position"]
    x = as_float(ctx["images"][i : i + 1]).to(device)
    target = int(ctx["targets"][i])
    method = p["method"]
    if method == "normlime":
        scores = ctx["class_scores"]["normlime"][target]
    elif method in ctx.get("image_scores", {}):  # computed for every image at once
        scores = ctx["image_scores"][method][i]
    else:
        params = ctx["method_params"].get(method, {})
        if method == "shap" and "baseline" not in params and ctx.get("shap_baseline"):
            params = {**params, "baseline": ctx["value"]}
        explainer = explainer_for(method, model, "pixels", params, 1.0, job.seed)
        t = torch.tensor([target], device=device)
        scores = explainer.attribute(x, t).detach().reshape(-1).cpu().numpy()
    curves = game_curves(
        model, x[0], scores, ctx["step"], ctx["value"], target, ctx["top_k"], ctx["order"]
    )
    row = {k: [round(float(v), 7) for v in curves[k]] for k in METRICS}
    row["n_occluded"] = [int(c) for c in curves["n_occluded"]]
    row["target"] = target
    row["label"] = int(ctx["labels"][i])
    row["auc"] = {k: auc(row[k]) for k in METRICS}
    return row


def select_images(model, data, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` correctly classified test images, in a seeded random order."""
    import torch

    from explainers.data import as_float

    device = next(model.parameters()).device
    order = np.random.default_rng(derive_seed("occlusion-images", seed)).permutation(data.n_test)
    chosen = []
    with torch.inference_mode():
        for start in range(0, order.size, 1000):
            idx = order[start : start + 1000]
            pred = model(as_float(data.test_images[idx]).to(device)).argmax(1).cpu().numpy()
            chosen.extend(idx[pred == data.test_labels[idx]].tolist())
            if len(chosen) >= n:
                break
    if len(chosen) < n:
        raise ValueError(f"only {len(chosen)} test images are classified correctly, {n} asked")
    return np.asarray(chosen[:n])


def run_occlusion(
    settings: OcclusionSettings,
    data,
    model,
    out: str | Path,
    *,
    model_meta: dict | None = None,
    n_jobs: int = 1,
    scheduler=None,
    threads: int | None = None,
    progress: bool = True,
    log=print,
):
    """Run (or resume) the occlusion benchmark into ``out``; returns the AUC summary."""
    import torch

    from explainers.data import as_float

    from .kar import predict
    from .rankings import compute_rankings

    settings = settings.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from explainers.model import file_checksum

    config = settings.result_config()
    config["data"] = data.provenance()
    config["model"] = (model_meta or {}).get("sha256") or (
        file_checksum(model_meta["path"]) if model_meta and "path" in model_meta else None
    )
    store = JobStore(out / "occlusion-jobs.jsonl", config)
    t_start = time.perf_counter()
    device = next(model.parameters()).device
    chosen = select_images(model, data, settings.images, settings.seed)
    images = data.test_images[chosen]
    with torch.inference_mode():
        targets = model(as_float(images).to(device)).argmax(1).cpu().numpy()
    class_scores = {}
    rank_meta = {}
    if "normlime" in settings.methods:
        rk = compute_rankings(
            ["normlime"],
            "class",
            "pixels",
            model,
            data,
            {"train": predict(model, data.train_images)},
            per_class=settings.explain_per_class,
            params=settings.method_params,
            seed=settings.seed,
            cache=out / "rankings",
            progress=progress,
            log=log,
        )
        class_scores["normlime"] = rk["normlime"].scores
        rank_meta["normlime"] = rk["normlime"].meta
    image_scores = _lime_on_data(settings, model, data, images, targets, chosen, out, rank_meta)
    ctx = {
        "token": store.fingerprint,
        "model_config": asdict(model.config),
        "model_state": {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()},
        "images": np.ascontiguousarray(images),
        "targets": targets,
        "labels": np.asarray(data.test_labels[chosen]),
        "class_scores": class_scores,
        "image_scores": image_scores,
        "method_params": settings.method_params,
        "step": settings.step,
        "value": settings.occlusion_value,
        "top_k": settings.top_k,
        "order": settings.order,
        "device": settings.device,
        "shap_baseline": True,
    }
    jobs = [
        Job(
            f"{m}|{int(chosen[i])}",
            derive_seed("occlusion", settings.seed, m, int(chosen[i])),
            {"method": m, "image": int(chosen[i]), "position": i},
        )
        for m in settings.methods
        for i in range(len(chosen))
    ]
    t0 = time.perf_counter()
    rows = run_jobs(
        occlusion_job,
        jobs,
        ctx,
        store,
        n_jobs=n_jobs,
        scheduler=scheduler,
        threads=threads,
        progress=progress,
        desc="occlusion",
    )
    timings = {
        "jobs_s": round(time.perf_counter() - t0, 1),
        "total_s": round(time.perf_counter() - t_start, 1),
    }
    curves, aucs = occlusion_frames(rows, settings.methods)
    summary = summarise_aucs(aucs)
    meta = {
        "settings": json.loads(json.dumps(asdict(settings), default=str)),
        "data": data.provenance(),
        "model": model_meta or {},
        "occlusion_value": settings.occlusion_value,
        "rankings": rank_meta,
        "timings_this_invocation": timings,
        "n_jobs": n_jobs,
    }
    write_outputs(curves, aucs, summary, meta, out)
    return summary


def _lime_on_data(settings, model, data, images, targets, chosen, out: Path, meta: dict):
    """LIME on data neighbours for every occluded image at once (the neighbour pool -- the
    model's training images and its outputs on them -- is built once, not in every job).

    Each image's draw is seeded by its occlusion job's seed, so a map depends only on the
    image and the run's seed.  Returns {"lime": (N, 784)} or {} for other readings."""
    from explainers.data import as_float

    from .rankings import data_neighbourhood, lime_weights

    params = settings.method_params.get("lime", {})
    if "lime" not in settings.methods or params.get("neighbourhood") != "data":
        return {}
    nb = data_neighbourhood(model, data.train_images, "pixels", params, out / "rankings")
    seeds = np.array(
        [derive_seed("occlusion", settings.seed, "lime", int(c)) for c in chosen], dtype=np.int64
    )
    device = next(model.parameters()).device
    weights, r2 = lime_weights(
        model, as_float(images).to(device), targets, "pixels", params, 1.0, 0,
        neighbourhood=nb, seeds=seeds,
    )  # fmt: skip
    meta["lime"] = {
        "neighbour_pool": f"{nb.size:,} training images, effective size {nb.effective_size:g}",
        "mean_r2": float(np.mean(r2)),
        "seeds": "each image's occlusion job seed",
    }
    return {"lime": weights}


# --------------------------------------------------------------------------- results


def occlusion_frames(rows: list[dict], methods):
    """(curves: one row per method x image x step, aucs: one row per method x image)."""
    import pandas as pd

    order = {m: i for i, m in enumerate(methods)}
    rows = sorted(rows, key=lambda r: (order.get(r["method"], 99), r["image"]))
    long, aucs = [], []
    for r in rows:
        total = r["n_occluded"][-1]
        for t, n_occ in enumerate(r["n_occluded"]):
            long.append(
                {
                    "method": r["method"],
                    "image": r["image"],
                    "step": t,
                    "n_occluded": n_occ,
                    "fraction": n_occ / total,
                    **{k: r[k][t] for k in METRICS},
                }
            )
        aucs.append(
            {
                "method": r["method"],
                "image": r["image"],
                "target": r["target"],
                "seed": r["seed"],
                **{f"auc_{k}": r["auc"][k] for k in METRICS},
            }
        )
    return pd.DataFrame(long), pd.DataFrame(aucs)


def summarise_aucs(aucs):
    agg = {}
    for k in METRICS:
        agg[f"auc_{k}_mean"] = (f"auc_{k}", "mean")
        agg[f"auc_{k}_sd"] = (f"auc_{k}", "std")
    summary = aucs.groupby("method", sort=False).agg(images=("image", "size"), **agg)
    return summary.reset_index()


LABELS = {
    "p_target": "p(target) — deletion curve",
    "entropy": "entropy of the top-k probabilities",
    "std_topk": "SD of the top-k probabilities",
    "insertion": "p(target) — insertion from blur",
}


def write_outputs(curves, aucs, summary, meta: dict, out: Path) -> None:
    out = Path(out)
    curves.to_csv(out / "occlusion.csv", index=False, float_format="%.6g")
    aucs.to_csv(out / "occlusion-auc.csv", index=False, float_format="%.6g")
    summary.to_csv(out / "occlusion-summary.csv", index=False, float_format="%.6g")
    (out / "occlusion.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    (out / "occlusion.md").write_text(markdown_summary(summary, meta))
    plot_curves(curves, meta, out)


def markdown_summary(summary, meta: dict) -> str:
    s = meta["settings"]
    lines = [
        "# Occlusion benchmark (Zhang & Gao 2020) and RISE deletion/insertion",
        "",
        f"{int(summary['images'].max())} correctly classified test images; pixels occluded "
        f"in descending {'|importance|' if s['order'] == 'abs' else 'signed importance'} "
        f"order, {s['step']} per step, with the value {meta['occlusion_value']:g}; "
        f"target = the model's prediction; entropy/SD over the top-{s['top_k']} classes "
        "of the clean image.  AUC = RISE trapezoid on [0, 1], mean ± SD over images.",
        "",
        "| method | deletion AUC (p_target) ↓ | entropy AUC ↑ | SD top-k AUC ↓ | insertion AUC ↑ |",
        "|---|---:|---:|---:|---:|",
    ]
    for _, r in summary.iterrows():
        cells = [
            f"{r[f'auc_{k}_mean']:.3f} ± {r[f'auc_{k}_sd']:.3f}"
            if np.isfinite(r[f"auc_{k}_sd"])
            else f"{r[f'auc_{k}_mean']:.3f}"
            for k in METRICS
        ]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def plot_curves(curves, meta: dict, out: Path) -> None:
    """occlusion-<metric>.png per metric and occlusion.png with all four panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = curves.groupby(["method", "step"], sort=False).mean(numeric_only=True).reset_index()
    methods = list(dict.fromkeys(curves["method"]))

    def draw(ax, metric):
        for m in methods:
            rows = mean[mean["method"] == m].sort_values("step")
            ax.plot(rows["fraction"] * 100, rows[metric], label=m, lw=1.4)
        ax.set_xlabel("pixels occluded (%)")
        ax.set_title(LABELS[metric], fontsize=9)
        ax.grid(True, alpha=0.3)

    for metric in METRICS:
        fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=120)
        draw(ax, metric)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"occlusion-{metric}.png")
        plt.close(fig)
    fig, axes = plt.subplots(2, 2, figsize=(9.6, 7.0), dpi=120)
    for ax, metric in zip(axes.flat, METRICS, strict=True):
        draw(ax, metric)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Occlusion, {int(curves['image'].nunique())} test images (mean curves)")
    fig.tight_layout()
    fig.savefig(out / "occlusion.png")
    plt.close(fig)
