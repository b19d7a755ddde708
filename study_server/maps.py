"""The maps the participants see, loaded once per process from a maps bundle.

Only :mod:`explainers.bundle` is used (numpy + json, no torch).  The PNG bytes are kept in
memory and served under opaque per-participant URLs, so the bundle's file names (which
contain method names) never reach a participant.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from explainers.bundle import STUDY_METHODS, BundleError, read_bundle

__all__ = ["MapStore", "load_maps", "default_maps_dir", "BundleError"]

SHIPPED_MAPS = Path("assets/maps/mnist")
BUILT_MAPS = Path("artifacts/maps")


def default_maps_dir() -> Path:
    """``$NORMLIME_MAPS``, else the shipped bundle when present, else ``artifacts/maps``."""
    env = os.environ.get("NORMLIME_MAPS")
    if env:
        return Path(env)
    if (SHIPPED_MAPS / "manifest.json").is_file():
        return SHIPPED_MAPS
    return BUILT_MAPS


@dataclass(frozen=True)
class MapStore:
    root: Path
    sha256: str
    pngs: dict[tuple[str, int], bytes]

    def png(self, method: str, digit: int) -> bytes:
        return self.pngs[(method, int(digit))]


def load_maps(root: str | Path) -> MapStore:
    """Read and verify a bundle; raises BundleError (one line) when it is unusable."""
    bundle = read_bundle(root, require=STUDY_METHODS)
    pngs = {}
    for method in STUDY_METHODS:
        for digit in range(10):
            pngs[(method, digit)] = bundle.png_path(method, digit).read_bytes()
    sha = (
        bundle.manifest.get("maps_sha256")
        or hashlib.sha256(b"".join(pngs[k] for k in sorted(pngs))).hexdigest()
    )
    return MapStore(root=Path(root), sha256=sha, pngs=pngs)
