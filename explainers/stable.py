"""The ``stable`` preset's local-explanation settings, in one torch-free place.

Chosen by the rule of docs/stimuli-protocol.md (part two) from the grid in
docs/stimuli.md: neighbours drawn from the training data, ``K`` features per local model,
a kernel whose effective sample size is ``m`` images, ``N`` draws per explanation, and
the explanations per digit that make two independent runs agree.  The numbers are written
once, in the built-in project ``mnist`` (explainers/projects/mnist/study.toml), which
``normlime precompute --preset stable`` runs; the KAR and occlusion presets
(analysis.benchmarks.presets) read them here, so the stimuli and the benchmarks use one
reading of eq. (1)-(2).
"""

import tomllib
from pathlib import Path

_LIME = tomllib.loads(
    (Path(__file__).parent / "projects" / "mnist" / "study.toml").read_text(encoding="utf-8")
)["lime"]

STABLE_K: int = _LIME["n_features"]
STABLE_EFFECTIVE_SIZE: int = _LIME["effective_size"]
STABLE_N_SAMPLES: int = _LIME["n_samples"]
STABLE_PER_CLASS: int = _LIME["per_class"]
