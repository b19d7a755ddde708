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
import zipfile
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

#: The high percentile every map is divided by (see RENDER_RULE).  The SmoothGrad
#: authors' visualisation code caps saliency at the 99th percentile of the map's values,
#: so that a few extreme pixels do not compress the rest of the map into black; we take
#: their convention rather than tune a number on our own maps.
DISPLAY_PERCENTILE = 99.0

#: The single rendering rule applied to every map of every method.  It is written into
#: each manifest so a reader knows no method was drawn differently for cosmetic reasons.
RENDER_RULE = {
    "values": "negative values clipped to 0 (only positive evidence is shown); negative "
    "values and exact zeros are both drawn as the colormap's lowest colour, for every method",
    "normalisation": f"divided by the {DISPLAY_PERCENTILE:g}th percentile of the map's 784 "
    "clipped values, values above it saturate at 1; if that percentile is 0 (at most 1% of "
    "the pixels are positive) the map's maximum is used; an all-zero map stays black",
    "shared_scale": "no: each map is scaled on its own, because the methods' units differ "
    "(squared gradients, LIME weights, NormLIME's w^2/||w||_1); a shared scale would make "
    "the method with the largest numbers the brightest",
    "quantisation": "rounded to 256 levels",
    "colormap": "inferno",
    "scale": 8,
    "resampling": "nearest neighbour (each of the 28x28 pixels becomes an 8x8 block)",
    "file": "8-bit palette PNG (the colormap's 256 levels as its palette), image data "
    "stored without compression, no text chunks or other metadata: every map's file has "
    "the same byte length, so the size of a download cannot tell methods apart",
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
    """The rule's numeric part: clip negatives, divide by the high percentile, cap at 1.

    Returns values in [0, 1] of the same shape: what a participant sees, before the
    256-level quantisation.  Stability and inspection statistics use these values.
    """
    arr = np.clip(np.asarray(saliency, dtype=np.float64), 0.0, None)
    if not np.all(np.isfinite(arr)):
        raise BundleError("a map contains non-finite values")
    if arr.size == 0:
        return arr
    scale = float(np.percentile(arr, DISPLAY_PERCENTILE))
    if scale <= 0:
        scale = float(arr.max())
    return np.minimum(arr / scale, 1.0) if scale > 0 else arr


def _colormap_table(name: str) -> np.ndarray:
    from matplotlib import colormaps

    cmap = colormaps[name]
    return (cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8)


def render_png(saliency: np.ndarray, rule: dict | None = None) -> bytes:
    """Render one 28x28 map to PNG bytes following ``rule`` (default RENDER_RULE).

    The file's length depends only on the image's dimensions: a palette image whose
    deflate stream uses stored (uncompressed) blocks.
    """
    from PIL import Image

    rule = rule or RENDER_RULE
    values = display_values(saliency)
    if values.shape != (28, 28):
        raise BundleError(f"a map must be 28x28, got {values.shape}")
    levels = np.rint(values * 255.0).astype(np.uint8)
    scale = int(rule["scale"])
    levels = np.repeat(np.repeat(levels, scale, axis=0), scale, axis=1)
    image = Image.frombytes("P", (levels.shape[1], levels.shape[0]), levels.tobytes())
    image.putpalette(_colormap_table(rule["colormap"]).tobytes(), rawmode="RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=0)
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
    try:
        with np.load(io.BytesIO(raw)) as z:
            maps = {k: np.asarray(z[k], dtype=np.float32) for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{npz_path} is truncated or not a maps file ({exc})") from None
    for method, arr in maps.items():
        if arr.shape != MAP_SHAPE:
            raise BundleError(f"{npz_path}: {method!r} has shape {arr.shape}, expected {MAP_SHAPE}")
        if not np.all(np.isfinite(arr)):
            raise BundleError(f"{npz_path}: {method!r} contains NaN or infinite values")
    missing = [m for m in require if m not in maps]
    if missing:
        raise BundleError(f"bundle {root} lacks maps for {', '.join(missing)}")
    entries = manifest.get("maps", [])
    for entry in entries:
        if not isinstance(entry, dict) or not {"method", "digit", "png"} <= set(entry):
            raise BundleError(f"{manifest_path}: a maps entry lacks its method, digit or png")
    if verify_pngs:
        for entry in entries:
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
