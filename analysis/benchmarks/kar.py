"""Keep-And-Retrain (KAR), as the NormLIME paper uses it (Figures 5-6).

Protocol as implemented (docs/benchmarks.md states every choice and why):

1. Train the explained ("baseline") CNN on the unmodified training set (or load one with
   ``--model``).  Its predictions key every class-specific choice; true labels never do.
2. Rank the features of the chosen space (pixels 1x28x28, or the conv-2 output 64x14x14)
   with each method (:mod:`analysis.benchmarks.rankings`): one global ranking by default.
3. For a removal fraction ``r``, remove the ``k = floor(r * F)`` *least* important features
   (ascending stable sort of the scores: ties go to the lower index first) by replacing
   them with one value, the same for every method, in training and test data:

   * pixels: the MNIST training mean 0.1307 (``--replacement mean``, default), which is
     exactly 0 after the model's internal standardisation (Hooker et al.'s rule), or 0;
   * conv features: the per-feature training-set mean activation of the explained model
     (``mean``, default), or 0 (post-ReLU "off").

4. Retrain from scratch with the job's seed: pixels -- a fresh ``MnistCNN``, trained with
   the same loop and optimiser as ``explainers.train.train_model``; conv features -- conv-1
   and conv-2 are frozen from the explained model, the layers after conv-2 (fc1, fc2, fc3)
   are re-initialised and retrained on the masked features.  Evaluate on the identically
   masked test set.
5. Error gain (percentage points) = test error of a retrained model minus the mean test
   error of the "baseline" jobs: the same retraining at r = 0 (no removal) with the same
   run seeds.  x axis = fraction removed.
6. Controls: the random ranking; with ``class`` or ``per-image`` rankings a mask-only run
   per (method, r, run) trains the same network on the binary keep-mask alone (ROAD's
   leakage control) -- its accuracy above chance is what the mask shape reveals.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .jobs import Job, JobStore, derive_seed, run_jobs
from .rankings import FEATURE_SHAPES, FEATURE_SPACES, KAR_METHODS, RANKING_KINDS, Ranking

__all__ = [
    "KarSettings",
    "n_removed",
    "keep_mask",
    "keep_for",
    "subset_data",
    "kar_jobs",
    "kar_job",
    "kar_context",
    "run_kar",
    "summarise",
    "write_outputs",
    "PIXEL_MEAN",
]

#: MNIST training-set mean in [0, 1] pixel units (explainers.model.MNIST_MEAN)
PIXEL_MEAN = 0.1307
REPLACEMENTS = ("mean", "zero")


@dataclass(frozen=True)
class KarSettings:
    """Everything that defines a KAR experiment (defaults = the paper's protocol)."""

    features: str = "pixels"
    methods: tuple[str, ...] = ("normlime", "lime", "shap", "smoothgrad", "vargrad", "random")
    fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    runs: int = 5
    ranking: str = "global"
    replacement: str = "mean"
    train_size: int | None = None  # None: the whole training set
    test_size: int | None = None  # None: the whole test set
    epochs: int = 6
    batch_size: int = 128
    lr: float = 1e-3
    lr_decay: float = 0.7
    explain_per_class: int = 100  # explained training images per predicted class
    method_params: dict = field(default_factory=dict)
    seed: int = 0
    mask_control: bool | None = None  # None: on for class/per-image rankings
    device: str | None = None

    def validate(self) -> KarSettings:
        if self.features not in FEATURE_SPACES:
            raise ValueError(f"features must be one of {', '.join(FEATURE_SPACES)}")
        if self.ranking not in RANKING_KINDS:
            raise ValueError(f"ranking must be one of {', '.join(RANKING_KINDS)}")
        if self.replacement not in REPLACEMENTS:
            raise ValueError(f"replacement must be one of {', '.join(REPLACEMENTS)}")
        bad = [m for m in self.methods if m not in KAR_METHODS]
        if bad:
            raise ValueError(
                f"unknown method(s) {', '.join(bad)}; choose from {', '.join(KAR_METHODS)}"
            )
        if not self.methods:
            raise ValueError("at least one method is needed")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError("a method is named twice")
        if not self.fractions or any(not (0.0 < f < 1.0) for f in self.fractions):
            raise ValueError("fractions must lie strictly between 0 and 1")
        if len(set(self.fractions)) != len(self.fractions):
            raise ValueError("a fraction is named twice")
        for name in ("runs", "epochs", "batch_size", "explain_per_class"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1")
        for name in ("train_size", "test_size"):
            value = getattr(self, name)
            if value is not None and int(value) < 10:
                raise ValueError(f"{name.replace('_', '-')} must be at least 10")
        return self

    @property
    def controls(self) -> bool:
        if self.mask_control is None:
            return self.ranking != "global"
        return bool(self.mask_control)

    def train_config(self):
        from explainers.train import TrainConfig

        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            lr_decay=self.lr_decay,
            seed=self.seed,
        )

    def result_config(self) -> dict:
        """What decides the result of a job (the resume fingerprint; grid extent excluded)."""
        d = asdict(self)
        for k in ("methods", "fractions", "runs", "mask_control", "device"):
            d.pop(k)
        d["method_params"] = {m: self.method_params.get(m, {}) for m in sorted(self.method_params)}
        return d


# --------------------------------------------------------------------------- masking


def n_removed(n_features: int, fraction: float) -> int:
    """``floor(fraction * n_features)`` (robust to binary rounding, e.g. 0.29 * 100)."""
    return int(math.floor(fraction * n_features + 1e-9))


def keep_mask(scores: np.ndarray, fraction: float) -> np.ndarray:
    """True for the features kept when the least important ``fraction`` is removed.

    ``scores`` (..., F): higher = more important.  The removed features are the first
    ``floor(fraction * F)`` of an ascending *stable* sort, so among equal scores the
    lower index is removed first (deterministic tie-break).
    """
    scores = np.asarray(scores)
    f = scores.shape[-1]
    k = n_removed(f, fraction)
    order = np.argsort(scores, axis=-1, kind="stable")
    keep = np.ones(scores.shape, dtype=bool)
    np.put_along_axis(keep, order[..., :k], False, axis=-1)
    return keep


def keep_for(payload: dict, split: str, pred: np.ndarray, fraction: float, chunk: int = 2048):
    """Keep-masks of a split's images: (1, F) for a global ranking, else (N, F).

    Class rankings index their rows with the explained model's *predicted* class.
    """
    kind = payload["kind"]
    if kind == "global":
        return keep_mask(payload["scores"], fraction)[None]
    if kind == "class":
        return keep_mask(payload["scores"], fraction)[np.asarray(pred)]
    src = payload["per_image"].get(split)
    if src is None:  # NormLIME has no per-image maps: its class ranking of the prediction
        return keep_mask(payload["scores"], fraction)[np.asarray(pred)]
    maps = np.load(src, mmap_mode="r") if isinstance(src, str) else src
    out = np.empty(maps.shape, dtype=bool)
    for start in range(0, maps.shape[0], chunk):
        out[start : start + chunk] = keep_mask(np.abs(maps[start : start + chunk]), fraction)
    return out


# --------------------------------------------------------------------------- data


def subset_data(data, train_size: int | None, test_size: int | None, seed: int):
    """The data a KAR experiment uses: random subsets (seeded) of train and test, or all.

    Indices are sorted so the subset keeps the original order.
    """
    rng = np.random.default_rng(derive_seed("kar-subset", seed))

    def pick(n, size):
        if size is None or size >= n:
            return np.arange(n)
        return np.sort(rng.choice(n, size=size, replace=False))

    tr = pick(data.n_train, train_size)
    te = pick(data.n_test, test_size)
    return replace(
        data,
        description=f"{data.description}, KAR subset {tr.size} train / {te.size} test "
        f"(seed {seed})",
        train_images=data.train_images[tr],
        train_labels=data.train_labels[tr],
        test_images=data.test_images[te],
        test_labels=data.test_labels[te],
    )


# --------------------------------------------------------------------------- training


def _accuracy(forward, batch_fn, y, n: int, device, batch_size: int = 1000) -> float:
    import torch

    correct = 0
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(n, start + batch_size))
            out = forward(batch_fn(idx).to(device))
            correct += int((out.argmax(1).cpu() == y[idx]).sum())
    return correct / max(1, n)


class _Masked:
    """Rows of ``x`` with their removed features replaced (or, for the control, the mask)."""

    def __init__(self, x, keep, value, control: bool):
        import torch

        self.x = x
        self.shape = tuple(x.shape[1:])
        self.keep = None if keep is None else torch.as_tensor(keep).to(x.device)
        self.value = value
        self.control = control
        self.single = self.keep is not None and self.keep.shape[0] == 1

    def __call__(self, idx):
        import torch

        idx = idx.to(self.x.device)
        xb = self.x[idx]
        if self.keep is None:
            return xb
        keep = self.keep if self.single else self.keep[idx]
        keep = keep.reshape(keep.shape[0], *self.shape)
        if self.control:
            return keep.expand(xb.shape).to(xb.dtype)
        return torch.where(keep, xb, self.value)


_FEATURE_CACHE: dict = {}


def _conv_cache(ctx: dict, model, device):
    """Conv features of the train and test images, computed once per worker process."""
    from .rankings import feature_inputs

    key = (ctx["token"], str(device))
    if key not in _FEATURE_CACHE:
        _FEATURE_CACHE.clear()  # one experiment at a time per process
        _FEATURE_CACHE[key] = tuple(
            feature_inputs(model, ctx[f"{split}_images"], "conv").to(device)
            for split in ("train", "test")
        )
    return _FEATURE_CACHE[key]


def _model_from_state(ctx: dict, device):
    import torch

    from explainers.model import CNNConfig, MnistCNN

    model = MnistCNN(CNNConfig.from_dict(ctx["model_config"]))
    # copies: joblib hands large context arrays to workers as read-only memmaps
    model.load_state_dict({k: torch.tensor(np.array(v)) for k, v in ctx["model_state"].items()})
    return model.to(device).eval()


def kar_job(ctx: dict, job: Job) -> dict:
    """One retraining: (method, fraction, run, kind) -> test accuracy.

    ``kind`` is ``baseline`` (no removal), ``kar`` or ``mask-control``.  Runs where the
    job lands (this process, a joblib worker, a Dask worker); uses CUDA when available.
    """
    import torch

    from explainers.data import as_float
    from explainers.devices import pick_device
    from explainers.model import CNNConfig, MnistCNN
    from explainers.train import TrainConfig, fit, seed_everything

    p = job.params
    device = pick_device(ctx.get("device"))
    config = TrainConfig(**{**ctx["train_config"], "seed": job.seed})
    y_tr = torch.from_numpy(np.array(ctx["train_labels"], dtype=np.int64))
    y_te = torch.from_numpy(np.array(ctx["test_labels"], dtype=np.int64))
    features = ctx["features"]
    n_features = int(np.prod(FEATURE_SHAPES[features]))
    if p["kind"] == "baseline":
        keep_tr = keep_te = None
    else:
        payload = ctx["rankings"][p["method"]]
        keep_tr = keep_for(payload, "train", ctx["train_pred"], p["fraction"])
        keep_te = keep_for(payload, "test", ctx["test_pred"], p["fraction"])
    control = p["kind"] == "mask-control"
    if features == "pixels":
        x_tr = as_float(ctx["train_images"]).to(device)
        x_te = as_float(ctx["test_images"]).to(device)
        value = torch.tensor(float(ctx["replacement"]), device=device)
        generator = seed_everything(job.seed)
        model = MnistCNN(CNNConfig.from_dict(ctx["model_config"])).to(device)
        params, forward = list(model.parameters()), model.logits
    else:
        base = _model_from_state(ctx, device)
        x_tr, x_te = _conv_cache(ctx, base, device)
        value = torch.as_tensor(
            np.asarray(ctx["replacement"], dtype=np.float32), device=device
        ).reshape(FEATURE_SHAPES["conv"] if np.ndim(ctx["replacement"]) else ())
        generator = seed_everything(job.seed)
        model = base
        for p_ in (*model.conv1.parameters(), *model.conv2.parameters()):
            p_.requires_grad_(False)
        for layer in (model.fc1, model.fc2, model.fc3):  # re-initialised from the job's seed
            layer.reset_parameters()
        params = [*model.fc1.parameters(), *model.fc2.parameters(), *model.fc3.parameters()]
        forward = model.head
    train_batches = _Masked(x_tr, keep_tr, value, control)
    test_batches = _Masked(x_te, keep_te, value, control)
    losses = fit(model, params, forward, train_batches, y_tr, config, generator=generator,
                 device=device)  # fmt: skip
    acc = _accuracy(forward, test_batches, y_te, len(y_te), device)
    removed = 0 if p["kind"] == "baseline" else n_removed(n_features, p["fraction"])
    return {
        "accuracy": acc,
        "n_removed": removed,
        "n_features": n_features,
        "final_loss": round(losses[-1], 6),
        "device": str(device),
    }


def kar_jobs(settings: KarSettings) -> list[Job]:
    """The grid: baseline runs, then method x fraction x run (+ mask-only controls).

    A run's seed is shared by every method and fraction (common random numbers: methods
    are compared on identically initialised and ordered retrainings).
    """
    jobs = []
    run_seed = {r: derive_seed("kar-run", settings.seed, r) for r in range(settings.runs)}
    for r in range(settings.runs):
        jobs.append(
            Job(
                f"baseline|0|{r}",
                run_seed[r],
                {"kind": "baseline", "method": "baseline", "fraction": 0.0, "run": r},
            )
        )
    kinds = ["kar", "mask-control"] if settings.controls else ["kar"]
    for kind in kinds:
        for m in settings.methods:
            for f in settings.fractions:
                for r in range(settings.runs):
                    jobs.append(
                        Job(
                            f"{kind}|{m}|{f:g}|{r}",
                            run_seed[r],
                            {"kind": kind, "method": m, "fraction": float(f), "run": r},
                        )
                    )
    return jobs


# --------------------------------------------------------------------------- pipeline


def run_kar(
    settings: KarSettings,
    data,
    out: str | Path,
    *,
    model_path: str | Path | None = None,
    n_jobs: int = 1,
    scheduler=None,
    threads: int | None = None,
    progress: bool = True,
    log=print,
    on_record=None,
):
    """Run (or resume) a KAR experiment into ``out``; returns the summary DataFrame.

    ``data`` is an ``explainers.data.MnistData``; the training/test subsets are drawn
    from it with ``settings.seed``.  Rankings and the explained model are cached in
    ``out``; finished retrainings are in ``out/kar-jobs.jsonl``.
    """

    from explainers.model import file_checksum
    from explainers.model import load as load_model

    settings = settings.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = subset_data(data, settings.train_size, settings.test_size, settings.seed)
    config = settings.result_config()
    config["data"] = data.provenance()
    config["model"] = file_checksum(model_path) if model_path else "trained-in-out-dir"
    store = JobStore(out / "kar-jobs.jsonl", config)
    t_start = time.perf_counter()
    timings: dict = {}

    model, model_meta = _explained_model(settings, data, out, model_path, log, load_model)
    pred = {s: predict(model, getattr(data, f"{s}_images")) for s in ("train", "test")}
    replacement = _replacement(settings, model, data)
    t0 = time.perf_counter()
    rankings = _rankings(settings, model, data, pred, replacement, out, log, progress)
    timings["rankings_s"] = round(time.perf_counter() - t0, 1)

    ctx = kar_context(settings, data, model, pred, replacement, rankings, store.fingerprint)
    jobs = kar_jobs(settings)
    t0 = time.perf_counter()
    rows = run_jobs(
        kar_job,
        jobs,
        ctx,
        store,
        n_jobs=n_jobs,
        scheduler=scheduler,
        threads=threads,
        progress=progress,
        desc=f"KAR {settings.features}",
        on_record=on_record,
    )
    timings["retraining_s"] = round(time.perf_counter() - t0, 1)
    timings["total_s"] = round(time.perf_counter() - t_start, 1)
    frame = results_frame(rows, settings)
    summary = summarise(frame)
    meta = {
        "settings": _jsonable_settings(settings),
        "data": data.provenance(),
        "explained_model": {
            **model_meta,
            "test_accuracy_on_kar_test_set": float(np.mean(pred["test"] == data.test_labels)),
        },
        "replacement": _describe_replacement(settings, replacement),
        "rankings": {m: rankings[m].meta for m in settings.methods},
        "timings_this_invocation": timings,
        "n_jobs": n_jobs,
        "scheduler": None if scheduler is None else str(scheduler),
    }
    write_outputs(frame, summary, meta, out)
    return summary


def kar_context(settings: KarSettings, data, model, pred: dict, replacement, rankings, token):
    """What every KAR job receives: data, the explained model's weights and predictions,
    the replacement value and each method's ranking (``Ranking`` or its payload dict)."""
    return {
        "token": token,
        "features": settings.features,
        "train_images": np.ascontiguousarray(data.train_images),
        "train_labels": np.asarray(data.train_labels, dtype=np.int64),
        "test_images": np.ascontiguousarray(data.test_images),
        "test_labels": np.asarray(data.test_labels, dtype=np.int64),
        "train_pred": np.asarray(pred["train"]),
        "test_pred": np.asarray(pred["test"]),
        "model_config": asdict(model.config),
        "model_state": {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()},
        "replacement": replacement,
        "train_config": {k: v for k, v in asdict(settings.train_config()).items() if k != "seed"},
        "rankings": {
            m: (r.payload() if isinstance(r, Ranking) else r)
            for m, r in rankings.items()
            if m in settings.methods
        },
        "device": settings.device,
    }


def predict(model, images: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """The model's predicted classes for uint8 images, in batches (bounded memory)."""
    import torch

    from explainers.data import as_float

    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            xb = as_float(images[start : start + batch_size]).to(device)
            out.append(model(xb).argmax(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _jsonable_settings(settings: KarSettings) -> dict:
    return json.loads(json.dumps(asdict(settings), default=str))


def _explained_model(settings, data, out: Path, model_path, log, load_model):
    """The model whose explanations rank the features: loaded, cached in out, or trained."""
    from explainers.model import save
    from explainers.train import train_model

    if model_path is not None:
        model = load_model(model_path)
        meta = {"path": str(model_path)}
    elif (out / "model.pt").exists():
        model = load_model(out / "model.pt")
        meta = json.loads((out / "model.json").read_text())
    else:
        log(f"training the explained model ({settings.epochs} epochs, seed {settings.seed})")
        result = train_model(data, settings.train_config(), device=settings.device)
        meta = {
            "test_accuracy": result.test_accuracy,
            "seed": settings.seed,
            "epochs": settings.epochs,
            "wall_time_s": round(result.wall_time_s, 2),
            "data": data.provenance(),
        }
        save(result.model, out / "model.pt", meta)
        model = result.model
    from explainers.devices import pick_device

    return model.to(pick_device(settings.device)).eval(), meta


def _replacement(settings: KarSettings, model, data):
    """The value removed features take: a float (pixels) or an (F,) vector (conv)."""
    if settings.replacement == "zero":
        return 0.0
    if settings.features == "pixels":
        return PIXEL_MEAN
    from .rankings import feature_inputs

    total = None
    n = 0
    for start in range(0, data.n_train, 2000):
        f = feature_inputs(model, data.train_images[start : start + 2000], "conv")
        s = f.double().sum(0).flatten().cpu().numpy()
        total = s if total is None else total + s
        n += f.shape[0]
    return (total / n).astype(np.float32)


def _describe_replacement(settings: KarSettings, value) -> dict:
    if np.ndim(value) == 0:
        return {"rule": settings.replacement, "value": float(value)}
    v = np.asarray(value)
    return {
        "rule": "per-feature training-set mean activation",
        "mean_of_values": float(v.mean()),
        "min": float(v.min()),
        "max": float(v.max()),
        "file": "replacement.npy",
    }


def _rankings(settings, model, data, pred, replacement, out: Path, log, progress):
    """Every method's ranking, computed once and cached under ``out/rankings``."""
    from .rankings import LIME_DERIVED, compute_rankings

    cache = out / "rankings"
    need = list(settings.methods)
    log(
        f"rankings ({settings.ranking}, {settings.features}): "
        f"{', '.join(need)} from {settings.explain_per_class} explained images per class"
    )
    if np.ndim(replacement):
        np.save(out / "replacement.npy", np.asarray(replacement))
    return compute_rankings(
        need,
        settings.ranking,
        settings.features,
        model,
        data,
        pred,
        per_class=settings.explain_per_class,
        params=settings.method_params,
        seed=settings.seed,
        cache=cache,
        baseline_value=replacement,
        progress=progress,
        log=log,
        lime_derived=LIME_DERIVED,
    )


# --------------------------------------------------------------------------- results


def results_frame(rows: list[dict], settings: KarSettings):
    """kar.csv: one row per retraining with its error gain (percentage points)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    base = frame[frame["kind"] == "baseline"]
    base_error = 1.0 - base["accuracy"].mean()
    frame["features"] = settings.features
    frame["ranking"] = settings.ranking
    frame["error_gain"] = ((1.0 - frame["accuracy"]) - base_error) * 100.0
    frame.loc[frame["kind"] == "mask-control", "error_gain"] = np.nan
    order = {m: i for i, m in enumerate(("baseline", *settings.methods))}
    frame["_m"] = frame["method"].map(order)
    frame = frame.sort_values(["kind", "_m", "fraction", "run"]).drop(columns="_m")
    cols = [
        "method",
        "features",
        "fraction",
        "run",
        "seed",
        "accuracy",
        "error_gain",
        "kind",
        "ranking",
        "n_removed",
        "n_features",
        "wall_s",
        "device",
        "worker",
    ]
    return frame[[c for c in cols if c in frame.columns]].reset_index(drop=True)


def summarise(frame):
    """Mean and SD over runs per (kind, method, fraction)."""
    grouped = frame.groupby(["kind", "method", "fraction"], sort=False)
    summary = grouped.agg(
        runs=("accuracy", "size"),
        accuracy_mean=("accuracy", "mean"),
        accuracy_sd=("accuracy", "std"),
        error_gain_mean=("error_gain", "mean"),
        error_gain_sd=("error_gain", "std"),
    ).reset_index()
    return summary


def write_outputs(frame, summary, meta: dict, out: Path) -> None:
    """kar.csv, kar-summary.csv, kar.md, kar.png and kar.json."""
    out = Path(out)
    frame.to_csv(out / "kar.csv", index=False, float_format="%.6g")
    summary.to_csv(out / "kar-summary.csv", index=False, float_format="%.6g")
    (out / "kar.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    (out / "kar.md").write_text(markdown_table(frame, summary, meta))
    plot(summary, meta, out / "kar.png")


def markdown_table(frame, summary, meta: dict) -> str:
    s = meta["settings"]
    base = summary[summary["kind"] == "baseline"]
    kar = summary[summary["kind"] == "kar"]
    lines = [
        f"# KAR on {s['features']} ({s['ranking']} ranking)",
        "",
        f"Error gain in percentage points (test error of the retrained model minus the mean "
        f"test error of {int(base['runs'].sum())} unmodified retrainings), mean ± SD over "
        f"runs; columns = fraction of features removed.",
        "",
        f"* baseline (r = 0) accuracy: {base['accuracy_mean'].iloc[0]:.2%} "
        f"(SD {_fmt_sd(base['accuracy_sd'].iloc[0] * 100)} pp)",
        f"* explained model accuracy: {_acc(meta['explained_model'])}",
        f"* replacement value: {_fmt_replacement(meta['replacement'])}",
        f"* data: {meta['data']['description']}",
        f"* retraining: {s['epochs']} epochs, batch {s['batch_size']}, Adam lr {s['lr']}, "
        f"decay {s['lr_decay']}/epoch; "
        + (
            "fresh CNN from scratch"
            if s["features"] == "pixels"
            else "conv-1/conv-2 frozen from the explained model, fc layers re-initialised"
        ),
    ]
    support = {m: r.get("nonzero_features") for m, r in meta.get("rankings", {}).items()}
    if any(v is not None for v in support.values()):
        n_feat = int(frame["n_features"].max()) if "n_features" in frame else None
        lines.append(
            "* features with a non-zero score"
            + (" (mean per class)" if s["ranking"] != "global" else "")
            + f" of {n_feat} (zero-score ties are removed lowest index first): "
            + ", ".join(f"{m} {v}" for m, v in support.items() if v is not None)
        )
    lines.append("")
    fractions = sorted(kar["fraction"].unique())
    header = "| method | " + " | ".join(f"{f:g}" for f in fractions) + " |"
    lines += [header, "|---|" + "---:|" * len(fractions)]
    for method in kar["method"].unique():
        cells = []
        for f in fractions:
            row = kar[(kar["method"] == method) & (kar["fraction"] == f)]
            if row.empty:
                cells.append("")
            else:
                r = row.iloc[0]
                cells.append(f"{r['error_gain_mean']:+.2f} ± {_fmt_sd(r['error_gain_sd'])}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    ctrl = summary[summary["kind"] == "mask-control"]
    if not ctrl.empty:
        lines += [
            "",
            "Mask-only control: accuracy of the same network trained on the binary "
            "keep-mask alone (chance = 10%); above chance = the mask reveals the class.",
            "",
            header,
            "|---|" + "---:|" * len(fractions),
        ]
        for method in ctrl["method"].unique():
            cells = []
            for f in fractions:
                row = ctrl[(ctrl["method"] == method) & (ctrl["fraction"] == f)]
                cells.append("" if row.empty else f"{row.iloc[0]['accuracy_mean']:.1%}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def _fmt_sd(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def _acc(meta: dict) -> str:
    acc = meta.get("test_accuracy_on_kar_test_set", meta.get("test_accuracy"))
    return "n/a" if acc is None else f"{acc:.2%}"


def _fmt_replacement(rep: dict) -> str:
    if "value" in rep:
        return f"{rep['value']:g} ({rep['rule']})"
    return f"{rep['rule']} (mean {rep['mean_of_values']:.4f}, saved in {rep['file']})"


def plot(summary, meta: dict, path: Path) -> None:
    """Error gain against fraction removed, symmetric-log y axis (the paper: log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = meta["settings"]
    kar = summary[summary["kind"] == "kar"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for method in kar["method"].unique():
        rows = kar[kar["method"] == method].sort_values("fraction")
        sd = rows["error_gain_sd"].fillna(0.0)
        ax.errorbar(
            rows["fraction"] * 100,
            rows["error_gain_mean"],
            yerr=sd,
            marker="o",
            ms=4,
            capsize=3,
            label=method,
        )
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_xlabel("features removed (%)")
    ax.set_ylabel("error gain (percentage points, symlog)")
    ax.set_title(f"KAR, {s['features']} ({s['ranking']} ranking), {s['runs']} run(s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
