"""The ``stable`` preset's local-explanation settings, in one torch-free place.

Chosen by the rule of docs/stimuli-protocol.md (part two) from the grid in
docs/stimuli.md: neighbours drawn from the training data, ``K`` features per local model,
a kernel whose effective sample size is ``m`` images, ``N`` draws per explanation, and
the explanations per digit that make two independent runs agree.  ``normlime precompute``
(explainers.precompute) and the KAR and occlusion presets (analysis.benchmarks.presets)
both read them, so the stimuli and the benchmarks use one reading of eq. (1)-(2).
"""

STABLE_K = 10
STABLE_EFFECTIVE_SIZE = 1000
STABLE_N_SAMPLES = 1000
STABLE_PER_CLASS = 2700
