"""Interpretable features for LIME, NormLIME and KernelSHAP on large images.

With one pixel per feature a 224 x 224 RGB image has 150,528 features: no local linear
model fitted on a few thousand samples can say anything about them.  The field's answer
is superpixels.  NormLIME aggregates local explanations *across images* (paper eq. 7-9),
so feature ``i`` must mean the same region in every image: the features here are a fixed
grid of ``cell x cell`` squares (the last row and column may be smaller), the same for
every image, spanning all channels.  Image-specific segmentations (SLIC) would give every
image its own features and make that aggregation undefined.

A feature map is an int64 array of shape (H, W) with labels 0 .. M-1.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["grid_features", "parse_features", "features_digest", "describe_features"]


def grid_features(height: int, width: int, cell: int) -> np.ndarray:
    """(H, W) labels of a grid of ``cell x cell`` squares, numbered row by row."""
    if int(cell) < 1:
        raise ValueError(f"a grid cell must be at least 1 pixel, got {cell}")
    cell = int(cell)
    cols = -(-int(width) // cell)
    rows = np.arange(int(height)) // cell
    return (rows[:, None] * cols + np.arange(int(width))[None, :] // cell).astype(np.int64)


def parse_features(spec, shape: tuple[int, ...]) -> np.ndarray | None:
    """The feature map for inputs of ``shape`` (C, H, W) from a config value.

    ``"pixels"`` or None: one feature per input value (no map); ``{"kind": "grid",
    "cell": n}``: a fixed grid of n x n squares over all channels.
    """
    if spec is None or spec == "pixels":
        return None
    if not isinstance(spec, dict) or spec.get("kind") != "grid":
        raise ValueError(
            f"features must be \"pixels\" or {{kind = \"grid\", cell = N}}, got {spec!r}"
        )
    unknown = set(spec) - {"kind", "cell"}
    if unknown:
        raise ValueError(f"grid features take only 'cell', not {', '.join(sorted(unknown))}")
    if len(shape) < 2:
        raise ValueError(f"grid features need images (…, H, W), got inputs of shape {shape}")
    cell = spec.get("cell")
    if not isinstance(cell, int) or isinstance(cell, bool) or cell < 1:
        raise ValueError(f"grid cell must be a whole number of pixels >= 1, got {cell!r}")
    return grid_features(shape[-2], shape[-1], cell)


def features_digest(labels: np.ndarray | None) -> str | None:
    if labels is None:
        return None
    arr = np.ascontiguousarray(labels, dtype=np.int64)
    return hashlib.blake2b(arr.tobytes() + str(arr.shape).encode(), digest_size=8).hexdigest()


def describe_features(labels: np.ndarray | None) -> str:
    if labels is None:
        return "one feature per input value"
    return f"fixed grid of {int(labels.max()) + 1} cells over {labels.shape[0]}x{labels.shape[1]}"
