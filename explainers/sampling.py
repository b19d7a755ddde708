"""The one stratified sampler: ``per_class`` random examples of every class.

Used to choose the images behind class maps (precompute, ``mean_class_maps``) and to
build the embedded MNIST subset.  Classes are visited in order and each row is drawn
without replacement from that class's (allowed) examples with the same generator, so a
seed fixes the whole draw.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SamplingError", "per_class_sample"]


class SamplingError(ValueError):
    """A class has fewer usable examples than requested (``.label``, ``.available``)."""

    def __init__(self, label: int, available: int, requested: int):
        super().__init__(f"class {label} has {available} usable examples, {requested} requested")
        self.label, self.available, self.requested = int(label), int(available), int(requested)


def per_class_sample(
    labels,
    per_class: int,
    rng: np.random.Generator | int | None,
    *,
    classes=None,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """(len(classes), per_class) indices into ``labels``.

    ``classes`` defaults to 0 .. max label; ``allowed`` (a boolean mask) excludes examples.
    Raises :class:`SamplingError` naming the first class that is too small.
    """
    labels = np.asarray(labels)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    classes = np.arange(int(labels.max()) + 1) if classes is None else np.asarray(classes)
    rows = []
    for c in classes:
        mask = labels == c
        if allowed is not None:
            mask &= allowed
        idx = np.flatnonzero(mask)
        if idx.size < per_class:
            raise SamplingError(c, idx.size, per_class)
        rows.append(rng.choice(idx, size=int(per_class), replace=False))
    return np.stack(rows) if rows else np.zeros((0, int(per_class)), dtype=np.int64)
