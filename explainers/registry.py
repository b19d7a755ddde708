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

A study project (``explainers.project``) names its methods by *kind* and gives each its
parameters: the kind is a registered name (``smoothgrad``, ``kernelshap``, ...) or a kind
registered with :func:`register_kind` that only makes sense with parameters (``captum``:
any Captum attribution class; ``function``: a user's ``f(model, inputs, target)``).
:func:`build` makes the explainer: ``cls.from_config(forward_func, random_state=...,
**params)`` when the class defines it, else ``cls(forward_func, random_state=...,
**params)`` -- every registered constructor takes the forward function first and
``random_state`` by keyword, and its other keyword arguments are its parameters.
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
    "register_kind",
    "kind_class",
    "build",
]
# also, computed on first use: STUDY_METHODS, BASELINES, ALL_METHODS (name tuples in stream
# order) and PER_IMAGE (name -> class)

_MARKERS = ("@register(", "register_aggregate(", "@register_kind(")


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
_KINDS: dict[str, type] = {}
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


def register_kind(name: str):
    """Class decorator: a method kind used only from a study project, with parameters
    (it is not a method of the MNIST replication and has no seed stream of its own)."""

    def deco(cls):
        if name in _KINDS or name in _SPECS:
            raise ValueError(f"method kind {name!r} is registered twice")
        _KINDS[name] = cls
        return cls

    return deco


def kind_class(kind: str):
    """The class of per-image method kind ``kind`` (a registered method or kind)."""
    _discover()
    if kind in _KINDS:
        return _KINDS[kind]
    spec = _SPECS.get(kind)
    if spec is None or spec.cls is None:
        known = sorted([*_KINDS, *(s.name for s in _SPECS.values() if s.cls is not None)])
        raise ValueError(f"unknown method kind {kind!r}; per-image kinds are {', '.join(known)}")
    return spec.cls


def build(kind: str, forward_func, *, random_state, params: dict | None = None):
    """The explainer of ``kind`` with a project's ``params`` (see the module docstring).

    Unknown or invalid parameters raise ValueError naming them.
    """
    cls = kind_class(kind)
    params = dict(params or {})
    factory = getattr(cls, "from_config", None)
    try:
        if callable(factory):
            return factory(forward_func, random_state=random_state, **params)
        return cls(forward_func, random_state=random_state, **params)
    except TypeError as exc:
        raise ValueError(f"method kind {kind!r}: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # "LocalLime.__init__() got an unexpected keyword argument 'x'" -> "unknown parameter 'x'"
    if "unexpected keyword argument" in text:
        return "unknown parameter " + text.split("unexpected keyword argument", 1)[1].strip()
    return text


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
