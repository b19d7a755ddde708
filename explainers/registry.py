"""The method registry: one explicit table of every attribution method the package has.

Like ``captum/attr/__init__.py``, the table imports each method's class by name; nothing
is discovered by scanning files.  Adding a method to the package means writing its module
and adding one row here.

Each method of the MNIST replication (:data:`METHODS`) carries:

``name``      the key used everywhere: ``--methods``, ``maps.npz``, the study database,
              the analysis;
``stream``    its seed stream number (``precompute.method_seed``).  Numbers are assigned
              once and never reused, so adding a method never reseeds the others;
``study``     whether it is shown to participants: the names of
              :data:`explainers.bundle.STUDY_METHODS`, the one home of that list;
``kind``      the per-image explainer that computes it (a key of :data:`KINDS`); for
              NormLIME and LIME that is ``local_lime``, the per-image LIME explainer whose
              local explanations both aggregate (NormLIME eq. 9, SP-LIME eq. 6);
``settings``  which of precompute's per-image settings (``n_samples``, ``score``) it takes.

:data:`KINDS` maps every per-image explainer name to its class.  One construction
protocol builds them all: ``cls(forward_func, random_state=..., **params)`` -- the forward
function first, ``random_state`` by keyword, every other keyword a parameter (see
:func:`build`).  A study project names a kind and gives its parameters; ``captum`` (any
Captum attribution class) and ``function`` (a user's ``f(model, inputs, target)``) are
kinds that only make sense with parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from .bundle import STUDY_METHODS
from .captum_method import CaptumAttribution
from .function_method import FunctionAttribution
from .gradients import InputXGradient, SmoothGradSquared, VarGrad
from .kernelshap import KernelShap
from .lime import LocalLime
from .random_map import RandomMap
from .std import StdMap

__all__ = [
    "settings_params",
    "ALL_METHODS",
    "BASELINES",
    "KINDS",
    "LOCAL_LIME",
    "METHODS",
    "MethodSpec",
    "PER_IMAGE",
    "STUDY_METHODS",
    "build",
    "explainer_class",
    "kind_class",
    "method_spec",
    "methods",
    "parse_methods",
]

#: the per-image LIME explainer; the methods "normlime" and "lime" aggregate its output
LOCAL_LIME = "local_lime"

#: every per-image explainer, by the name a study project's ``kind`` uses
KINDS: dict[str, type] = {
    LOCAL_LIME: LocalLime,
    "smoothgrad": SmoothGradSquared,
    "vargrad": VarGrad,
    "shap": KernelShap,
    "random": RandomMap,
    "inputxgrad": InputXGradient,
    "std": StdMap,
    "captum": CaptumAttribution,
    "function": FunctionAttribution,
}


@dataclass(frozen=True)
class MethodSpec:
    name: str
    stream: int
    kind: str
    settings: tuple[str, ...] = ()

    @property
    def study(self) -> bool:
        return self.name in STUDY_METHODS

    @property
    def aggregate(self) -> bool:
        """Class maps aggregated from local LIME explanations rather than averaged maps."""
        return self.kind == LOCAL_LIME

    @property
    def cls(self) -> type | None:
        """The per-image class whose maps are averaged (None for an aggregate)."""
        return None if self.aggregate else KINDS[self.kind]


#: the MNIST replication's methods, in stream order
METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("normlime", 0, LOCAL_LIME),
    MethodSpec("lime", 1, LOCAL_LIME),
    MethodSpec("smoothgrad", 2, "smoothgrad", ("n_samples", "score")),
    MethodSpec("vargrad", 3, "vargrad", ("n_samples", "score")),
    MethodSpec("shap", 4, "shap", ("n_samples",)),
    MethodSpec("random", 5, "random"),
    MethodSpec("inputxgrad", 6, "inputxgrad"),
    MethodSpec("std", 7, "std"),
)

_SPECS = {s.name: s for s in METHODS}
ALL_METHODS: tuple[str, ...] = tuple(_SPECS)
BASELINES: tuple[str, ...] = tuple(s.name for s in METHODS if not s.study)
#: method name -> per-image class, for the methods whose class maps are averaged maps
PER_IMAGE: dict[str, type] = {s.name: s.cls for s in METHODS if s.cls is not None}


def _check_table() -> None:
    # import-time guard: a broken table must fail before any seed is drawn
    streams = [s.stream for s in METHODS]
    if len(set(streams)) != len(streams) or len(_SPECS) != len(METHODS):
        raise RuntimeError("explainers.registry: a method name or seed stream repeats")
    if list(STUDY_METHODS) != [s.name for s in METHODS if s.study]:
        raise RuntimeError("explainers.registry: STUDY_METHODS not in stream order")
    unknown = [s.kind for s in METHODS if s.kind not in KINDS]
    if unknown:
        raise RuntimeError(f"explainers.registry: unknown kind(s) {unknown}")


_check_table()


def methods() -> list[MethodSpec]:
    """Every method of the MNIST replication, in stream order."""
    return list(METHODS)


def method_spec(name: str) -> MethodSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(ALL_METHODS)}") from None


def explainer_class(name: str) -> type:
    """The per-image class of method ``name`` (whose class maps are averaged maps)."""
    spec = _SPECS.get(name)
    if spec is None or spec.cls is None:
        raise ValueError(
            f"unknown method {name!r}; per-input methods are {', '.join(sorted(PER_IMAGE))}"
        )
    return spec.cls


def kind_class(kind: str) -> type:
    """The class of per-image explainer ``kind``."""
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown method kind {kind!r}; per-image kinds are {', '.join(sorted(KINDS))}"
        ) from None


def settings_params(name: str, **settings) -> dict:
    """The constructor parameters method ``name`` takes from precompute's per-image
    settings (``n_samples``, ``score``); a None setting keeps the method's own default."""
    spec = method_spec(name)
    return {k: settings[k] for k in spec.settings if settings.get(k) is not None}


def build(kind: str, forward_func, *, random_state, params: dict | None = None):
    """The explainer of ``kind``: ``cls(forward_func, random_state=..., **params)``.

    Unknown or invalid parameters raise ValueError naming them.
    """
    cls = kind_class(kind)
    try:
        return cls(forward_func, random_state=random_state, **dict(params or {}))
    except TypeError as exc:
        raise ValueError(f"method kind {kind!r}: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # "LocalLime.__init__() got an unexpected keyword argument 'x'" -> "unknown parameter 'x'"
    if "unexpected keyword argument" in text:
        return "unknown parameter " + text.split("unexpected keyword argument", 1)[1].strip()
    return text


def parse_methods(text: str | None, allowed=None, default=None) -> tuple[str, ...]:
    """``"normlime,lime"`` -> ("normlime", "lime"), rejecting unknown or repeated names."""
    allowed = tuple(allowed) if allowed is not None else ALL_METHODS
    default = tuple(default) if default is not None else STUDY_METHODS
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
