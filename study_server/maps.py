"""The maps the participants see, loaded once per process from a maps bundle.

Only :mod:`explainers.bundle` is used (numpy + json, no torch).  The bundle also fixes the
study's survey design (:meth:`SurveyDesign.from_bundle`); exactly the PNGs that design can
show are kept in memory and served under opaque per-participant URLs, so the bundle's file
names (which contain method names) never reach a participant.  They are kept as they are
served: recompressed and padded to one length (:mod:`study_server.imagebytes`).
"""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from explainers.bundle import BundleError, read_bundle
from explainers.shipped import shipped_maps

from . import imagebytes
from .survey import CHECK_PICTURE, SurveyDesign

__all__ = ["MapStore", "load_maps", "default_maps_dir", "BundleError"]

BUILT_MAPS = Path("artifacts/maps")


def default_maps_dir() -> Path:
    """``$NORMLIME_MAPS``, else the bundle shipped in the package (package data, found
    wherever it is installed), else ``artifacts/maps`` (built by ``normlime up``)."""
    env = os.environ.get("NORMLIME_MAPS")
    if env:
        return Path(env)
    shipped = shipped_maps()
    if (shipped / "manifest.json").is_file():
        return shipped
    return BUILT_MAPS


@dataclass(frozen=True)
class MapStore:
    root: Path
    sha256: str
    #: the served bytes: compressed, every one padded to ``png_length``
    pngs: dict[tuple[str, int], bytes]
    design: SurveyDesign
    png_length: int

    def png(self, method: str, class_index: int) -> bytes:
        return self.pngs[(method, int(class_index))]


def load_maps(root: str | Path) -> MapStore:
    """Read and verify a bundle; raises BundleError (one line) when it is unusable."""
    bundle = read_bundle(root)
    try:
        design = SurveyDesign.from_bundle(bundle)
    except ValueError as exc:
        raise BundleError(f"bundle {root}: {exc}") from None
    missing = [m for m in design.methods if m not in bundle.maps]
    if missing:
        raise BundleError(f"bundle {root} lacks maps for {', '.join(missing)}")
    pngs = {
        (method, c): _png_bytes(bundle, method, c)
        for method in design.methods
        for c in design.shown_classes
    }
    if design.check_kind == "pictures" and design.attention_checks:
        # version 2's checks show pictures of any class
        pngs.update(
            {
                (CHECK_PICTURE, c): _png_bytes(bundle, CHECK_PICTURE, c)
                for c in range(bundle.n_classes)
            }
        )
    # the bundle's own hash (of its stored files), so answers name the bundle they used
    sha = (
        bundle.manifest.get("maps_sha256")
        or hashlib.sha256(b"".join(pngs[k] for k in sorted(pngs))).hexdigest()
    )
    try:
        served, length = imagebytes.equalise(pngs)
    except (ValueError, zlib.error) as exc:
        raise BundleError(f"bundle {root} holds a damaged PNG ({exc})") from None
    return MapStore(root=Path(root), sha256=sha, pngs=served, design=design, png_length=length)


def _png_bytes(bundle, method: str, class_index: int) -> bytes:
    path = bundle.png_path(method, class_index)
    try:
        return path.read_bytes()
    except OSError:
        raise BundleError(f"bundle {bundle.root} lacks {path.relative_to(bundle.root)}") from None
