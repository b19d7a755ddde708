"""Method names -> implementing classes, imported lazily.

The names are the keys used everywhere: ``--methods`` options, ``maps.npz`` keys, the
study database and the analysis.  ``STUDY_METHODS`` are the four shown to participants.
"""

from __future__ import annotations

import importlib

__all__ = [
    "PER_IMAGE",
    "STUDY_METHODS",
    "BASELINES",
    "ALL_METHODS",
    "explainer_class",
    "parse_methods",
]

STUDY_METHODS = ("normlime", "lime", "smoothgrad", "vargrad")
BASELINES = ("shap", "random", "inputxgrad", "std")
ALL_METHODS = STUDY_METHODS + BASELINES

#: per-input explainers (NormLIME is an aggregation of LIME's local explanations, so it
#: has no per-input class of its own; see explainers.normlime)
PER_IMAGE = {
    "lime": "explainers.lime:LocalLime",
    "smoothgrad": "explainers.gradients:SmoothGradSquared",
    "vargrad": "explainers.gradients:VarGrad",
    "inputxgrad": "explainers.gradients:InputXGradient",
    "shap": "explainers.kernelshap:KernelShap",
    "random": "explainers.random_map:RandomMap",
    "std": "explainers.std:StdMap",
}


def explainer_class(name: str):
    """The class implementing per-input method ``name``."""
    try:
        target = PER_IMAGE[name]
    except KeyError:
        raise ValueError(
            f"unknown method {name!r}; per-input methods are {', '.join(sorted(PER_IMAGE))}"
        ) from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def parse_methods(text: str | None, allowed=ALL_METHODS, default=STUDY_METHODS) -> tuple[str, ...]:
    """``"normlime,lime"`` -> ("normlime", "lime"), rejecting unknown or repeated names."""
    if text is None or not text.strip():
        return tuple(default)
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(
            f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(allowed)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"method list {text!r} names a method twice")
    return names
