"""On-disk cache of local LIME explanations, so a re-run of ``precompute`` reuses them.

An entry is keyed by everything that determines the explanation: the model file's sha256,
the exact bytes (dtype and shape) of the explained input, the explained label, the
explainer's parameters (including how the model is evaluated) and the input's noise seed.
Change any of them and the key changes; nothing is ever invalidated by time.

Layout: ``<root>/<key[:2]>/<key>.npz`` holding the sparse weight vector (indices + float32
values, as ``LocalLime.explain`` returns them, so a cache hit is bit-identical), the
intercept, R^2 and ``f(x0)``.  Files are written to a temporary name and renamed, so an
interrupted run never leaves a half-written entry; an unreadable entry counts as a miss
and is rewritten.

The default root is ``$NORMLIME_CACHE/local`` or ``~/.cache/normlime/local`` (next to where
``--data download`` keeps MNIST).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "CachedExplanation",
    "LocalCache",
    "PoolOutputsCache",
    "default_local_cache_dir",
    "explanation_key",
    "pool_outputs_key",
]

#: bump when the meaning of a cached explanation changes (algorithm, not parameters)
#: v3: the data-neighbourhood engine of issue 20 (v2: fixed-width LASSO paths)
SCHEMA = "locallime-v3"


def default_local_cache_dir() -> Path:
    base = os.environ.get("NORMLIME_CACHE") or Path.home() / ".cache" / "normlime"
    return Path(base) / "local"


def explanation_key(
    *, model_sha256: str, image: np.ndarray, target: int, params: dict, seed: int
) -> str:
    """sha256 over everything that determines one local explanation."""
    arr = np.ascontiguousarray(image)
    h = hashlib.sha256()
    header = {
        "schema": SCHEMA,
        "model": model_sha256,
        "dtype": str(arr.dtype),
        "shape": list(arr.shape),
        "target": int(target),
        "seed": int(seed),
        "params": params,
    }
    h.update(json.dumps(header, sort_keys=True).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


@dataclass
class CachedExplanation:
    weights: np.ndarray  # (d,) float32
    intercept: float
    r2: float
    prob: float


class LocalCache:
    """A directory of cached local explanations (``root=None``: the default directory)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_local_cache_dir()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> CachedExplanation | None:
        path = self._path(key)
        try:
            with np.load(path) as z:
                weights = np.zeros(int(z["d"]), dtype=np.float32)
                weights[z["idx"]] = z["val"]
                entry = CachedExplanation(
                    weights, float(z["intercept"]), float(z["r2"]), float(z["prob"])
                )
        except (OSError, KeyError, ValueError, IndexError, EOFError, zipfile.BadZipFile):
            # missing, or unreadable (e.g. truncated by a crash): recompute it
            return None
        return entry

    def put(self, key: str, weights: np.ndarray, intercept: float, r2: float, prob: float):
        weights = np.asarray(weights, dtype=np.float32).ravel()
        idx = np.flatnonzero(weights).astype(np.int32)
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    d=np.int64(weights.size),
                    idx=idx,
                    val=weights[idx],
                    intercept=np.float64(intercept),
                    r2=np.float64(r2),
                    prob=np.float64(prob),
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def pool_outputs_key(*, model_sha256: str, pool_digest: str, forward: str) -> str:
    """sha256 over what determines the model's outputs on a neighbour pool."""
    header = {"schema": "pool-outputs-v1", "model": model_sha256, "pool": pool_digest,
              "forward": forward}  # fmt: skip
    return hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()


class PoolOutputsCache:
    """The model's outputs on a neighbour pool, one ``.npy`` file per key under ``root/pool``.

    Computed once per (model, pool, evaluation path) and reused by every run; written to a
    temporary name and renamed, and an unreadable or misshapen file counts as a miss.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = (Path(root) if root is not None else default_local_cache_dir()) / "pool"

    def get(self, key: str, rows: int) -> np.ndarray | None:
        """The (rows, C) outputs stored under ``key``, or None."""
        try:
            out = np.load(self.root / f"{key}.npy")
        except (OSError, ValueError, EOFError):
            return None
        usable = out.ndim == 2 and out.shape[0] == rows and np.isfinite(out).all()
        return out if usable else None

    def put(self, key: str, outputs: np.ndarray) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".npy")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.asarray(outputs, dtype=np.float64))
            os.replace(tmp, self.root / f"{key}.npy")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
