"""Every seed of the explainers, derived in one place from a run's seed.

A stochastic result is reproducible from the seed recorded next to it.  Seeds are 63-bit
integers (they fit a signed int64 column and ``torch.Generator.manual_seed``) derived with
numpy's ``SeedSequence`` from a root seed and a *path* of stream numbers, so two streams
never share entropy and adding a stream never changes another:

========================  =================================================================
``derive(seed, *path)``   one seed: stream ``path`` of run ``seed``
``per_input(rs, n)``      one seed per input position of a batch (``rs``: a seed or a
                          ``SeedSequence``); what per-image methods use
``spawned(rs, n)``        n independent children of ``rs`` (LIME's per-input noise when no
                          seeds are given)
========================  =================================================================

``per_input`` and ``spawned`` are two derivations, not one, because the shipped maps bundle
was made with both (gradient methods and LIME); merging them would reseed those maps.
"""

from __future__ import annotations

import numpy as np

__all__ = ["stream", "derive", "per_input", "spawned", "as_int"]


def stream(seed: int, *path: int) -> np.random.SeedSequence:
    """The SeedSequence of stream ``path`` of run ``seed``."""
    return np.random.SeedSequence([int(seed), *map(int, path)])


def as_int(seq: np.random.SeedSequence) -> int:
    """A 63-bit integer seed drawn from ``seq``."""
    return int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def derive(seed: int, *path: int) -> int:
    """One 63-bit seed for stream ``path`` of run ``seed``."""
    return as_int(stream(seed, *path))


def per_input(random_state: int | np.random.SeedSequence | None, n: int) -> list[int]:
    """One 63-bit seed per input position, derived from ``random_state`` (None: fresh)."""
    seq = (
        random_state
        if isinstance(random_state, np.random.SeedSequence)
        else np.random.SeedSequence(random_state)
    )
    return [int(s) >> 1 for s in seq.generate_state(n, dtype=np.uint64)]


def spawned(random_state: int | None, n: int) -> np.ndarray:
    """``n`` independent 63-bit seeds spawned from ``random_state`` (None: fresh entropy)."""
    return np.array(
        [as_int(c) for c in np.random.SeedSequence(random_state).spawn(n)], dtype=np.int64
    )
