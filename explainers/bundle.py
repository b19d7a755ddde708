"""The maps bundle: the one artefact the study server reads.

Layout of a bundle directory (written by ``normlime precompute``)::

    manifest.json   what was computed, how, from which model and data, with which seeds
    maps.npz        one float32 array of shape (10, 28, 28) per method (key = method name)
    png/<method>-<digit>.png   every map rendered by the single rule in RENDER_RULE

This module deliberately imports neither torch nor anything else of ours, so the web
process can read bundles without loading PyTorch.  Rendering uses numpy, Pillow and a
colormap table taken from matplotlib once at render time.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "BundleError",
    "MapsBundle",
    "FORMAT",
    "VERSION",
    "STUDY_METHODS",
    "RENDER_RULE",
    "display_values",
    "render_png",
    "write_bundle",
    "read_bundle",
]

FORMAT = "normlime-maps"
VERSION = 1
#: the four methods shown to study participants, in the paper's order
STUDY_METHODS = ("normlime", "lime", "smoothgrad", "vargrad")
DIGITS = tuple(range(10))
MAP_SHAPE = (10, 28, 28)

#: The single rendering rule applied to every map of every method.  It is written into
#: each manifest so a reader knows no method was drawn differently for cosmetic reasons.
RENDER_RULE = {
    "values": "negative values clipped to 0 (only positive evidence is shown)",
    "normalisation": "divided by the map's own maximum (a map that is all 0 stays black)",
    "quantisation": "rounded to 256 levels",
    "colormap": "inferno",
    "scale": 8,
    "resampling": "nearest neighbour (each of the 28x28 pixels becomes an 8x8 block)",
    "file": "8-bit RGB PNG without text chunks or other metadata",
}


class BundleError(ValueError):
    """A bundle directory is missing, incomplete or inconsistent (one readable line)."""


@dataclass
class MapsBundle:
    """A bundle read from disk."""

    root: Path
    manifest: dict
    maps: dict[str, np.ndarray] = field(repr=False)

    @property
    def methods(self) -> list[str]:
        return sorted(self.maps)

    def png_path(self, method: str, digit: int) -> Path:
        return self.root / png_name(method, digit)


def png_name(method: str, digit: int) -> str:
    return f"png/{method}-{int(digit)}.png"


def display_values(saliency: np.ndarray) -> np.ndarray:
    """The rule's numeric part: clip negatives, divide by the maximum -> values in [0, 1]."""
    arr = np.clip(np.asarray(saliency, dtype=np.float64), 0.0, None)
    peak = arr.max(initial=0.0)
    if not np.isfinite(peak):
        raise BundleError("a map contains non-finite values")
    return arr / peak if peak > 0 else arr


def _colormap_table(name: str) -> np.ndarray:
    from matplotlib import colormaps

    cmap = colormaps[name]
    return (cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8)


def render_png(saliency: np.ndarray, rule: dict | None = None) -> bytes:
    """Render one 28x28 map to PNG bytes following ``rule`` (default RENDER_RULE)."""
    from PIL import Image

    rule = rule or RENDER_RULE
    values = display_values(saliency)
    if values.shape != (28, 28):
        raise BundleError(f"a map must be 28x28, got {values.shape}")
    levels = np.rint(values * 255.0).astype(np.uint8)
    rgb = _colormap_table(rule["colormap"])[levels]
    scale = int(rule["scale"])
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bundle(
    out_dir: str | Path,
    maps: dict[str, np.ndarray],
    *,
    methods_info: dict[str, dict] | None = None,
    extra: dict | None = None,
) -> Path:
    """Write ``maps`` (method -> (10, 28, 28)) as a bundle into ``out_dir``.

    ``methods_info[method]`` holds that method's parameters, seed, model checksum and wall
    time; it is copied into the manifest, once per method and once per (method, digit).
    ``extra`` is merged into the manifest's top level (model, data, seed, ...).
    """
    out = Path(out_dir)
    (out / "png").mkdir(parents=True, exist_ok=True)
    methods_info = methods_info or {}
    clean: dict[str, np.ndarray] = {}
    for method, arr in maps.items():
        arr = np.asarray(arr, dtype=np.float32)
        if arr.shape != MAP_SHAPE:
            raise BundleError(f"maps[{method!r}] has shape {arr.shape}, expected {MAP_SHAPE}")
        if not np.all(np.isfinite(arr)):
            raise BundleError(f"maps[{method!r}] contains non-finite values")
        clean[method] = arr
    entries = []
    for method, arr in clean.items():
        info = methods_info.get(method, {})
        for digit in DIGITS:
            png = render_png(arr[digit])
            (out / png_name(method, digit)).write_bytes(png)
            entries.append(
                {
                    "method": method,
                    "digit": digit,
                    "png": png_name(method, digit),
                    "png_sha256": _sha256(png),
                    **{
                        k: info[k]
                        for k in ("parameters", "seed", "model_sha256", "wall_time_s")
                        if k in info
                    },
                }
            )
    buf = io.BytesIO()
    np.savez_compressed(buf, **clean)
    (out / "maps.npz").write_bytes(buf.getvalue())
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
        "render": RENDER_RULE,
        "methods": {m: methods_info.get(m, {}) for m in clean},
        "maps_sha256": _sha256(buf.getvalue()),
        "maps": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return out


def read_bundle(
    root: str | Path, *, require: tuple[str, ...] = (), verify_pngs: bool = True
) -> MapsBundle:
    """Read and validate a bundle; ``require`` names methods that must be present."""
    root = Path(root)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise BundleError(
            f"{root} is not a maps bundle: {manifest_path} is missing (run `normlime precompute`)"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(
            f"{manifest_path} is not valid JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{manifest_path} is not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise BundleError(
            f"{manifest_path} has format version {manifest.get('version')}, "
            f"this reader needs {VERSION}"
        )
    npz_path = root / "maps.npz"
    if not npz_path.is_file():
        raise BundleError(f"{npz_path} is missing")
    raw = npz_path.read_bytes()
    if manifest.get("maps_sha256") and manifest["maps_sha256"] != _sha256(raw):
        raise BundleError(f"{npz_path} does not match the checksum in its manifest")
    with np.load(io.BytesIO(raw)) as z:
        maps = {k: np.asarray(z[k], dtype=np.float32) for k in z.files}
    for method, arr in maps.items():
        if arr.shape != MAP_SHAPE:
            raise BundleError(f"{npz_path}: {method!r} has shape {arr.shape}, expected {MAP_SHAPE}")
    missing = [m for m in require if m not in maps]
    if missing:
        raise BundleError(f"bundle {root} lacks maps for {', '.join(missing)}")
    if verify_pngs:
        for entry in manifest.get("maps", []):
            path = root / entry["png"]
            if not path.is_file():
                raise BundleError(f"bundle {root} lacks {entry['png']}")
            if entry.get("png_sha256") and _sha256(path.read_bytes()) != entry["png_sha256"]:
                raise BundleError(f"{path} does not match the checksum in its manifest")
        listed = {(e["method"], e["digit"]) for e in manifest.get("maps", [])}
        for method in maps:
            for digit in DIGITS:
                if (method, digit) not in listed:
                    raise BundleError(f"manifest of {root} does not list {method} digit {digit}")
    return MapsBundle(root=root, manifest=manifest, maps=maps)
