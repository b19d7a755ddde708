"""Presets of ``normlime kar`` and ``normlime occlusion``: smoke, cpu, paper.

A preset fills every option the user does not give; explicit options always win.

``smoke``  about a minute on 2 CPU cores with the embedded MNIST subset; exercises exactly
           the code path of the full runs (used by the tests).
``cpu``    meaningful results in about 20 minutes per command on a 2-core laptop with the
           full MNIST: a 10,000-image training subset, 3 epochs (about 98.5% accuracy),
           the paper's six methods, fractions 0.3/0.5/0.7/0.9 (pixels; conv adds 0.8 and a
           third run because its retraining is ~5x cheaper), 2 runs, rankings from 10
           explained training images per predicted class (every method explains the same
           100 images; 1,000, the paper preset's, would cost KernelSHAP alone ~40 min).
``paper``  the paper's protocol: full MNIST (60,000 / 10,000), 6 epochs (the shipped
           model's 99.08%), fractions 0.1 ... 0.9, 5 runs, every method (the paper's six
           plus Input x Gradient and the STD map), 100 explained images per class
           (1,000 local LIME explanations).  A GPU or a cluster job.

Explainer settings: LIME as the stimuli make it (``explainers.stable``): neighbours drawn
from the benchmark's training images with the stable preset's K and effective size, N
draws per explanation (the smoke preset: N = 200, K = 20, effective size 200);
SmoothGrad/VarGrad 100 samples, sigma 0.3 (the paper); KernelSHAP 2x2-pixel players (196)
with the replacement value as baseline, and on conv features (channel, 7x7 block) players
(256).  The smoke preset shrinks the sample counts only.

Threads: smoke and cpu run every job with ONE torch thread (cpu: two single-threaded
worker processes).  On the shared 2-core machine a training step with two threads was
measured 4x slower than with one while other processes competed for the cores (threads
spin-waiting for each other); one thread per job is also what keeps results identical
between executors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from explainers.stable import STABLE_EFFECTIVE_SIZE, STABLE_K, STABLE_N_SAMPLES

__all__ = ["PRESETS", "KarPreset", "OcclusionPreset", "kar_preset", "occlusion_preset"]

PRESETS = ("smoke", "cpu", "paper")

PAPER_METHODS = ("normlime", "lime", "shap", "smoothgrad", "vargrad", "random")
ALL_KAR_METHODS = (*PAPER_METHODS, "inputxgrad", "std")
NINE = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

#: LIME as the stimuli make it (explainers.stable): neighbours drawn from the benchmark's
#: training images, the stable preset's K and effective size
_LIME = {
    "n_samples": STABLE_N_SAMPLES,
    "n_features": STABLE_K,
    "neighbourhood": "data",
    "effective_size": STABLE_EFFECTIVE_SIZE,
}
_NOISE = {"n_samples": 100, "sigma": 0.3}
_SHAP_CPU = {"n_samples": 1000, "superpixel": 2}
_SHAP_PAPER = {"superpixel": 2}  # n_samples None: 2 M + 2048, the shap library's default
#: tiny explainer budgets of the smoke presets (the tests' runs)
_SMOKE = (
    {"n_samples": 200, "n_features": 20, "neighbourhood": "data", "effective_size": 200},
    {"n_samples": 10, "sigma": 0.3},
    {"n_samples": 200, "superpixel": 4},
)


def _params(lime: dict, noise: dict, shap: dict) -> dict:
    return {
        "lime": dict(lime),
        "smoothgrad": dict(noise),
        "vargrad": dict(noise),
        "shap": dict(shap),
    }


@dataclass(frozen=True)
class KarPreset:
    name: str
    data: str
    methods: tuple[str, ...]
    fractions: tuple[float, ...]
    runs: int
    train_size: int | None
    test_size: int | None
    epochs: int
    explain_per_class: int
    jobs: int
    threads: int | None  # torch threads per job; None: cores / jobs
    method_params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class OcclusionPreset:
    name: str
    data: str
    methods: tuple[str, ...]
    images: int
    step: int
    explain_per_class: int
    model_train_size: int | None  # training of the model when --model is not given
    model_epochs: int
    jobs: int
    threads: int | None
    method_params: dict = field(default_factory=dict)


_KAR = {
    "smoke": KarPreset(
        name="smoke",
        data="embedded",
        methods=("normlime", "lime", "smoothgrad", "random"),
        fractions=(0.5, 0.9),
        runs=1,
        train_size=1500,
        test_size=500,
        epochs=2,
        explain_per_class=2,
        jobs=1,
        threads=1,
        method_params=_params(*_SMOKE),
    ),
    "cpu": KarPreset(
        name="cpu",
        data="download",
        methods=PAPER_METHODS,
        fractions=(0.3, 0.5, 0.7, 0.9),
        runs=2,
        train_size=10_000,
        test_size=None,
        epochs=3,
        explain_per_class=10,
        jobs=2,
        threads=1,
        method_params=_params(_LIME, _NOISE, _SHAP_CPU),
    ),
    "paper": KarPreset(
        name="paper",
        data="download",
        methods=ALL_KAR_METHODS,
        fractions=NINE,
        runs=5,
        train_size=None,
        test_size=None,
        epochs=6,
        explain_per_class=100,
        jobs=1,
        threads=None,
        method_params=_params(_LIME, _NOISE, _SHAP_PAPER),
    ),
}

#: conv-feature retraining only trains the fully connected head (~5x cheaper per job)
_KAR_CONV = {"cpu": {"fractions": (0.3, 0.5, 0.7, 0.8, 0.9), "runs": 3}}

_OCC = {
    "smoke": OcclusionPreset(
        name="smoke",
        data="embedded",
        methods=("inputxgrad", "std", "normlime", "random"),
        images=5,
        step=56,
        explain_per_class=2,
        model_train_size=1500,
        model_epochs=2,
        jobs=1,
        threads=1,
        method_params=_params(*_SMOKE),
    ),
    "cpu": OcclusionPreset(
        name="cpu",
        data="download",
        methods=(
            "inputxgrad",
            "std",
            "smoothgrad",
            "vargrad",
            "lime",
            "normlime",
            "shap",
            "random",
        ),
        images=100,
        step=28,
        explain_per_class=10,
        model_train_size=None,
        model_epochs=2,
        jobs=2,
        threads=1,
        method_params=_params(_LIME, _NOISE, _SHAP_CPU),
    ),
    "paper": OcclusionPreset(
        name="paper",
        data="download",
        methods=(
            "inputxgrad",
            "std",
            "smoothgrad",
            "vargrad",
            "lime",
            "normlime",
            "shap",
            "random",
        ),
        images=1000,
        step=28,
        explain_per_class=100,
        model_train_size=None,
        model_epochs=6,
        jobs=1,
        threads=None,
        method_params=_params(_LIME, _NOISE, _SHAP_PAPER),
    ),
}


def kar_preset(name: str, features: str = "pixels") -> KarPreset:
    """The preset ``name`` for a feature space (cpu differs between pixels and conv)."""
    if name not in _KAR:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    preset = _KAR[name]
    if features == "conv" and name in _KAR_CONV:
        preset = replace(preset, **_KAR_CONV[name])
    return preset


def occlusion_preset(name: str) -> OcclusionPreset:
    if name not in _OCC:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return _OCC[name]
