"""The method registry: every attribution method registers itself in its own module.

A per-image method is a class decorated with :func:`register`; a method whose class maps
are aggregated from LIME's local explanations (NormLIME, LIME) is declared with
:func:`register_aggregate`.  Adding a method means adding one module under ``explainers/``
that does one of the two: the registry finds it (it imports, on first use, every module of
the package whose source calls ``register``), nothing else is edited.

Each method carries:

``name``    the key used everywhere: ``--methods``, ``maps.npz``, the study database, the
            analysis;
``stream``  its seed stream number (``precompute.method_seed``).  Numbers are assigned
            once and never reused, so adding a method never reseeds the others;
``study``   whether it is shown to participants (NormLIME, LIME, SmoothGrad, VarGrad).

Per-image classes build themselves from precompute's settings through a
``from_settings(forward_func, *, random_state, n_samples, score)`` classmethod, so no
constructor signature is inspected.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MethodSpec",
    "register",
    "register_aggregate",
    "method_spec",
    "methods",
    "explainer_class",
    "parse_methods",
]
# also, computed on first use: STUDY_METHODS, BASELINES, ALL_METHODS (name tuples in stream
# order) and PER_IMAGE (name -> class)

_MARKERS = ("@register(", "register_aggregate(")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    stream: int
    study: bool = False
    #: the per-image class (None for a pure aggregate)
    cls: type | None = None
    #: class maps aggregated from LIME's local explanations (NormLIME eq. 9, SP-LIME eq. 6)
    aggregate: bool = False


_SPECS: dict[str, MethodSpec] = {}
_discovered = False


def _add(spec: MethodSpec) -> None:
    old = _SPECS.get(spec.name)
    if old is not None:
        spec = MethodSpec(
            spec.name,
            spec.stream,
            spec.study or old.study,
            spec.cls or old.cls,
            spec.aggregate or old.aggregate,
        )
        if old.stream != spec.stream:
            raise ValueError(
                f"method {spec.name!r} registered with streams {old.stream} and {spec.stream}"
            )
    clash = [s.name for s in _SPECS.values() if s.stream == spec.stream and s.name != spec.name]
    if clash:
        raise ValueError(f"seed stream {spec.stream} of {spec.name!r} is already {clash[0]!r}'s")
    _SPECS[spec.name] = spec


def register(name: str, *, stream: int, study: bool = False):
    """Class decorator: a per-image method."""

    def deco(cls):
        if not callable(getattr(cls, "from_settings", None)):
            raise TypeError(f"{cls.__name__} needs a from_settings classmethod")
        _add(MethodSpec(name, int(stream), study, cls, False))
        return cls

    return deco


def register_aggregate(name: str, *, stream: int, study: bool = False) -> None:
    """A method whose class maps precompute aggregates from local LIME explanations."""
    _add(MethodSpec(name, int(stream), study, None, True))


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    root = Path(__file__).parent
    for info in pkgutil.iter_modules([str(root)]):
        path = root / f"{info.name}.py"
        if info.name == "registry" or not path.is_file():
            continue
        if any(m in path.read_text(encoding="utf-8") for m in _MARKERS):
            importlib.import_module(f"{__package__}.{info.name}")


def methods() -> list[MethodSpec]:
    """Every registered method, in stream order."""
    _discover()
    return sorted(_SPECS.values(), key=lambda s: s.stream)


def method_spec(name: str) -> MethodSpec:
    _discover()
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(
            f"unknown method {name!r}; choose from {', '.join(s.name for s in methods())}"
        ) from None


def explainer_class(name: str):
    """The class implementing per-input method ``name``."""
    specs = {s.name: s for s in methods()}
    spec = specs.get(name)
    if spec is None or spec.cls is None:
        per_input = sorted(n for n, s in specs.items() if s.cls is not None)
        raise ValueError(f"unknown method {name!r}; per-input methods are {', '.join(per_input)}")
    return spec.cls


def __getattr__(name: str):
    # derived lists, computed on first use (the modules that register import this one)
    if name == "STUDY_METHODS":
        return tuple(s.name for s in methods() if s.study)
    if name == "BASELINES":
        return tuple(s.name for s in methods() if not s.study)
    if name == "ALL_METHODS":
        return tuple(s.name for s in methods())
    if name == "PER_IMAGE":
        return {s.name: s.cls for s in methods() if s.cls is not None}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_methods(text: str | None, allowed=None, default=None) -> tuple[str, ...]:
    """``"normlime,lime"`` -> ("normlime", "lime"), rejecting unknown or repeated names."""
    allowed = tuple(allowed) if allowed is not None else __getattr__("ALL_METHODS")
    default = tuple(default) if default is not None else __getattr__("STUDY_METHODS")
    if text is None or not text.strip():
        return default
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(
            f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(allowed)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"method list {text!r} names a method twice")
    return names
