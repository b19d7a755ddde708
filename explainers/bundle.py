"""The maps bundle: the one artefact the study server reads.

Layout of a bundle directory (written by ``normlime precompute``)::

    manifest.json   what was computed, how, from which model and data, with which seeds
    maps.npz        one float32 array of shape (C, H, W) per method (key = method name)
    png/<method>-<class>.png   every map rendered by the single rule in the manifest
    representatives.npz        (overlay studies) the image each class's maps are drawn on
    pictures.npz, png/picture-<class>.png   what each class looks like (its mean image, or
                               its representative in an overlay study), drawn by the same
                               rule: the options of the attention checks

Format version 2 (this writer) names its C classes and their H x W shape in the manifest,
says whether maps are shown as heatmaps or overlaid on a representative image, and may
carry the study's survey design.  Version 1 bundles (10 MNIST digits, 28 x 28, heatmaps,
``digit`` entries) still load: the reader fills in those values.

This module deliberately imports neither torch nor anything else of ours, so the web
process can read bundles without loading PyTorch.  Rendering uses numpy, Pillow and a
colormap table taken from matplotlib once at render time.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "BundleError",
    "MapsBundle",
    "FORMAT",
    "VERSION",
    "READABLE_VERSIONS",
    "STUDY_METHODS",
    "RENDER_RULE",
    "DISPLAY_MODES",
    "PICTURE",
    "render_rule",
    "display_values",
    "render_png",
    "write_bundle",
    "read_bundle",
]

FORMAT = "normlime-maps"
VERSION = 2
READABLE_VERSIONS = (1, 2)
#: the four methods shown to study participants, in the paper's order
STUDY_METHODS = ("normlime", "lime", "smoothgrad", "vargrad")
MNIST_CLASSES = tuple(str(d) for d in range(10))
MNIST_SHAPE = (28, 28)
#: what a participant sees is about this many pixels wide, whatever the image size
DISPLAY_PIXELS = 224
#: "heatmap": the map alone; "overlay": the map blended on its class's representative image
DISPLAY_MODES = ("heatmap", "overlay")
#: the weight of the heatmap's colour in an overlay (Captum's blended_heat_map uses 0.5)
OVERLAY_ALPHA = 0.5
REPRESENTATIVES_FILE = "representatives.npz"
PICTURES_FILE = "pictures.npz"
#: the name under which class pictures are drawn and served; never a method's name
PICTURE = "picture"

#: The high percentile every map is divided by (see RENDER_RULE).  The SmoothGrad
#: authors' visualisation code caps saliency at the 99th percentile of the map's values,
#: so that a few extreme pixels do not compress the rest of the map into black; we take
#: their convention rather than tune a number on our own maps.
DISPLAY_PERCENTILE = 99.0


def _scale_for(shape: tuple[int, int]) -> int:
    """The integer zoom that makes the larger side at least DISPLAY_PIXELS (28 -> 8)."""
    return max(1, math.ceil(DISPLAY_PIXELS / max(shape)))


def _article(n: int) -> str:
    return "an" if str(n).startswith("8") or n in (11, 18) else "a"


def render_rule(shape: tuple[int, int] = MNIST_SHAPE, display: str = "heatmap") -> dict:
    """The single rendering rule of a bundle whose maps are ``shape`` and shown as ``display``.

    It is written into each manifest so a reader knows no method was drawn differently for
    cosmetic reasons.  For MNIST heatmaps it is :data:`RENDER_RULE`, word for word.
    """
    if display not in DISPLAY_MODES:
        raise BundleError(f"display must be one of {', '.join(DISPLAY_MODES)}, got {display!r}")
    h, w = (int(s) for s in shape)
    scale = _scale_for((h, w))
    rule = {
        "values": "negative values clipped to 0 (only positive evidence is shown); negative "
        "values and exact zeros are both drawn as the colormap's lowest colour, for every "
        "method",
        "normalisation": f"divided by the {DISPLAY_PERCENTILE:g}th percentile of the map's "
        f"{h * w} clipped values, values above it saturate at 1; if that percentile is 0 (at "
        "most 1% of the pixels are positive) the map's maximum is used; an all-zero map "
        "stays black",
        "shared_scale": "no: each map is scaled on its own, because the methods' units differ "
        "(squared gradients, LIME weights, NormLIME's w^2/||w||_1); a shared scale would make "
        "the method with the largest numbers the brightest",
        "quantisation": "rounded to 256 levels",
        "colormap": "inferno",
        "scale": scale,
        "resampling": f"nearest neighbour (each of the {h}x{w} pixels becomes "
        f"{_article(scale)} {scale}x{scale} block)",
    }
    if display == "heatmap":
        rule["file"] = (
            "8-bit palette PNG (the colormap's 256 levels as its palette), image data stored "
            "without compression, no text chunks or other metadata: every map's file has the "
            "same byte length, so the size of a download cannot tell methods apart"
        )
    else:
        rule["overlay"] = (
            f"the colormap's colour blended with weight {OVERLAY_ALPHA:g} on the greyscale "
            "(ITU-R 601 luma) of the class's representative image, the same image for every "
            "method (Captum's blended_heat_map convention)"
        )
        rule["file"] = (
            "24-bit RGB PNG, image data stored without compression, no text chunks or other "
            "metadata: every map's file has the same byte length"
        )
    return rule


#: The rendering rule of the MNIST replication (28 x 28 heatmaps).
RENDER_RULE = render_rule()


class BundleError(ValueError):
    """A bundle directory is missing, incomplete or inconsistent (one readable line)."""


@dataclass
class MapsBundle:
    """A bundle read from disk (either format version)."""

    root: Path
    manifest: dict
    maps: dict[str, np.ndarray] = field(repr=False)

    @property
    def methods(self) -> list[str]:
        return sorted(self.maps)

    @property
    def version(self) -> int:
        return int(self.manifest.get("version", 1))

    @property
    def classes(self) -> list[str]:
        """Class names, index = class id (version 1: the digits "0".."9")."""
        return [c["name"] for c in self.manifest.get("classes", [])] or list(MNIST_CLASSES)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def map_shape(self) -> tuple[int, int]:
        return tuple(self.manifest.get("map_shape", MNIST_SHAPE))

    @property
    def display(self) -> str:
        return self.manifest.get("display", "heatmap")

    @property
    def study_methods(self) -> list[str]:
        """The methods shown to participants (version 1: the paper's four)."""
        listed = self.manifest.get("study_methods")
        return list(listed) if listed else [m for m in STUDY_METHODS if m in self.maps]

    @property
    def survey(self) -> dict | None:
        """The survey design block of a study project's bundle (None: the MNIST design)."""
        return self.manifest.get("survey")

    def png_path(self, method: str, class_index: int) -> Path:
        return self.root / png_name(method, class_index)

    @property
    def has_pictures(self) -> bool:
        """Whether the bundle draws a picture of every class (the attention checks' options
        of survey version 2)."""
        return isinstance(self.manifest.get("pictures"), dict)


def png_name(method: str, class_index: int) -> str:
    return f"png/{method}-{int(class_index)}.png"


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


def _greyscale(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An (H, W), (1, H, W) or (3, H, W) image in [0, 1] as (H, W) luma in [0, 1]."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] == 3:
        img = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    elif img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.shape != tuple(shape):
        raise BundleError(f"a representative image has shape {image.shape}, maps are {shape}")
    return np.clip(img, 0.0, 1.0)


def render_png(saliency: np.ndarray, rule: dict | None = None, image=None) -> bytes:
    """Render one (H, W) map to PNG bytes following ``rule`` (default: the shape's heatmap).

    With ``image`` (the class's representative image, values in [0, 1]) the map is
    overlaid on it.  The file's length depends only on the image's dimensions: the image
    data is stored in uncompressed deflate blocks.
    """
    from PIL import Image

    values = display_values(saliency)
    if values.ndim != 2:
        raise BundleError(f"a map must be 2-D (H, W), got shape {values.shape}")
    rule = rule or render_rule(values.shape, "heatmap" if image is None else "overlay")
    levels = np.rint(values * 255.0).astype(np.uint8)
    scale = int(rule["scale"])
    table = _colormap_table(rule["colormap"])
    if image is None:
        levels = np.repeat(np.repeat(levels, scale, axis=0), scale, axis=1)
        out = Image.frombytes("P", (levels.shape[1], levels.shape[0]), levels.tobytes())
        out.putpalette(table.tobytes(), rawmode="RGB")
    else:
        grey = _greyscale(image, values.shape)[..., None] * 255.0
        rgb = (1.0 - OVERLAY_ALPHA) * grey + OVERLAY_ALPHA * table[levels].astype(np.float64)
        rgb = np.repeat(np.repeat(np.rint(rgb).astype(np.uint8), scale, axis=0), scale, axis=1)
        out = Image.fromarray(rgb, mode="RGB")
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=False, compress_level=0)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _clean_maps(maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not maps:
        raise BundleError("a bundle needs at least one method's maps")
    clean: dict[str, np.ndarray] = {}
    for method, arr in maps.items():
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim != 3 or 0 in arr.shape:
            raise BundleError(
                f"maps[{method!r}] has shape {arr.shape}, expected (classes, height, width)"
            )
        if not np.all(np.isfinite(arr)):
            raise BundleError(f"maps[{method!r}] contains non-finite values")
        clean[method] = arr
    shapes = {a.shape for a in clean.values()}
    if len(shapes) > 1:
        raise BundleError(f"every method's maps must have one shape, got {sorted(shapes)}")
    return clean


def write_bundle(
    out_dir: str | Path,
    maps: dict[str, np.ndarray],
    *,
    methods_info: dict[str, dict] | None = None,
    extra: dict | None = None,
    classes: list[str] | tuple[str, ...] | None = None,
    display: str = "heatmap",
    representatives: np.ndarray | None = None,
    study_methods: list[str] | tuple[str, ...] | None = None,
    survey: dict | None = None,
    pictures: np.ndarray | None = None,
) -> Path:
    """Write ``maps`` (method -> (C, H, W)) as a version-2 bundle into ``out_dir``.

    ``classes`` names the C classes (default: the digits, which needs C = 10).
    ``display="overlay"`` draws every map on ``representatives[c]``, one image per class
    ((C, H, W) grey or (C, 3, H, W) RGB, values in [0, 1]) shared by all methods.
    ``study_methods`` are the methods shown to participants (default: those of the paper's
    four present), ``survey`` the study's design block (see ``study_server.survey``).
    ``methods_info[method]`` holds that method's parameters, seed, model checksum and wall
    time; it is copied into the manifest, once per method and once per (method, class).
    ``extra`` is merged into the manifest's top level (model, data, seed, ...).
    ``pictures`` ((C, H, W), values in [0, 1]) show what each class looks like, drawn by the
    same rule (for an overlay study, the class's representative with nothing over it):
    the options of the attention checks (``study_server.survey``, version 2).
    """
    out = Path(out_dir)
    clean = _clean_maps(maps)
    if PICTURE in clean:
        raise BundleError(f"{PICTURE!r} names the class pictures, not a method")
    n_classes, h, w = next(iter(clean.values())).shape
    names = list(classes) if classes is not None else list(MNIST_CLASSES)
    if len(names) != n_classes or len(set(names)) != len(names):
        raise BundleError(f"{n_classes} classes of maps need {n_classes} distinct class names, "
                          f"got {len(names)}")  # fmt: skip
    rule = render_rule((h, w), display)
    reps = None
    if display == "overlay":
        if representatives is None:
            raise BundleError("an overlay bundle needs one representative image per class")
        reps = np.asarray(representatives, dtype=np.float32)
        if reps.shape[0] != n_classes:
            raise BundleError(f"{reps.shape[0]} representative images for {n_classes} classes")
    methods_info = methods_info or {}
    (out / "png").mkdir(parents=True, exist_ok=True)
    entries = []
    for method, arr in clean.items():
        info = methods_info.get(method, {})
        for c in range(n_classes):
            png = render_png(arr[c], rule, None if reps is None else reps[c])
            (out / png_name(method, c)).write_bytes(png)
            entries.append(
                {
                    "method": method,
                    "class": c,
                    "png": png_name(method, c),
                    "png_sha256": _sha256(png),
                    **{
                        k: info[k]
                        for k in ("parameters", "seed", "model_sha256", "wall_time_s")
                        if k in info
                    },
                }
            )
    raw = _npz_bytes(clean)
    (out / "maps.npz").write_bytes(raw)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
        "classes": [{"index": i, "name": str(n)} for i, n in enumerate(names)],
        "map_shape": [int(h), int(w)],
        "display": display,
        "study_methods": list(study_methods or [m for m in STUDY_METHODS if m in clean]),
        "render": rule,
        "methods": {m: methods_info.get(m, {}) for m in clean},
        "maps_sha256": _sha256(raw),
        "maps": entries,
    }
    if reps is not None:
        rep_raw = _npz_bytes({"images": reps})
        (out / REPRESENTATIVES_FILE).write_bytes(rep_raw)
        manifest["representatives"] = {"file": REPRESENTATIVES_FILE, "sha256": _sha256(rep_raw)}
    if survey is not None:
        manifest["survey"] = survey
    if pictures is not None:
        manifest["pictures"] = _write_pictures(out, pictures, rule, reps, (n_classes, h, w))
    missing = [m for m in manifest["study_methods"] if m not in clean]
    if missing:
        raise BundleError(f"study methods {', '.join(missing)} have no maps")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return out


def _write_pictures(out: Path, pictures, rule: dict, reps, shape) -> dict:
    pics = np.asarray(pictures, dtype=np.float32)
    if pics.shape != shape or not np.all(np.isfinite(pics)):
        raise BundleError(f"pictures must be finite, of shape {shape}, got {pics.shape}")
    raw = _npz_bytes({"pictures": pics})
    (out / PICTURES_FILE).write_bytes(raw)
    entries = []
    for c in range(shape[0]):
        if reps is None:
            png = render_png(pics[c], rule)
        else:  # an overlay study: the representative itself, no heat over it
            png = render_png(np.zeros(shape[1:]), rule, reps[c])
        (out / png_name(PICTURE, c)).write_bytes(png)
        entries.append({"class": c, "png": png_name(PICTURE, c), "png_sha256": _sha256(png)})
    return {
        "file": PICTURES_FILE,
        "sha256": _sha256(raw),
        "what": "each class's mean image (pixels in [0, 1], channels averaged), drawn by the "
        "rendering rule like a map; in an overlay study the class's representative image. "
        "The options of the attention checks (survey version 2): no method's map is shown "
        "in a check",
        "pngs": entries,
    }


def _read_manifest(root: Path) -> dict:
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
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{manifest_path} is not a {FORMAT} manifest")
    if manifest.get("version") not in READABLE_VERSIONS:
        raise BundleError(
            f"{manifest_path} has format version {manifest.get('version')}, this reader "
            f"reads versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    return manifest


def _read_maps(root: Path, manifest: dict, expected: tuple[int, ...]) -> dict[str, np.ndarray]:
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
        if arr.shape != expected:
            raise BundleError(f"{npz_path}: {method!r} has shape {arr.shape}, expected {expected}")
        if not np.all(np.isfinite(arr)):
            raise BundleError(f"{npz_path}: {method!r} contains NaN or infinite values")
    return maps


def _entry_class(entry) -> tuple[str, int]:
    if not isinstance(entry, dict) or "method" not in entry or "png" not in entry:
        raise BundleError("a maps entry of the manifest lacks its method or png")
    key = "class" if "class" in entry else "digit"  # version 1 entries say "digit"
    if key not in entry:
        raise BundleError("a maps entry of the manifest lacks its class")
    return entry["method"], int(entry[key])


def _verify_pngs(root: Path, manifest: dict, maps: dict, n_classes: int) -> None:
    entries = manifest.get("maps", [])
    listed = set()
    for entry in entries:
        listed.add(_entry_class(entry))
        path = root / entry["png"]
        if not path.is_file():
            raise BundleError(f"bundle {root} lacks {entry['png']}")
        if entry.get("png_sha256") and _sha256(path.read_bytes()) != entry["png_sha256"]:
            raise BundleError(f"{path} does not match the checksum in its manifest")
    for method in maps:
        for c in range(n_classes):
            if (method, c) not in listed:
                raise BundleError(f"manifest of {root} does not list {method} class {c}")


def read_bundle(
    root: str | Path, *, require: tuple[str, ...] = (), verify_pngs: bool = True
) -> MapsBundle:
    """Read and validate a bundle; ``require`` names methods that must be present."""
    root = Path(root)
    manifest = _read_manifest(root)
    bundle = MapsBundle(root=root, manifest=manifest, maps={})
    try:
        expected = (bundle.n_classes, *(int(s) for s in bundle.map_shape))
    except (KeyError, TypeError, ValueError):
        raise BundleError(f"{root / 'manifest.json'}: classes or map_shape malformed") from None
    if len(expected) != 3:
        raise BundleError(f"{root / 'manifest.json'}: map_shape must be [height, width]")
    bundle.maps = _read_maps(root, manifest, expected)
    missing = [m for m in require if m not in bundle.maps]
    if missing:
        raise BundleError(f"bundle {root} lacks maps for {', '.join(missing)}")
    for entry in manifest.get("maps", []):
        _entry_class(entry)
    if verify_pngs:
        _verify_pngs(root, manifest, bundle.maps, bundle.n_classes)
        if bundle.has_pictures:
            _verify_pictures(root, manifest["pictures"], bundle.n_classes)
    return bundle


def _verify_pictures(root: Path, block: dict, n_classes: int) -> None:
    entries = {int(e.get("class", -1)): e for e in block.get("pngs", []) if isinstance(e, dict)}
    for c in range(n_classes):
        entry = entries.get(c)
        if entry is None:
            raise BundleError(f"manifest of {root} does not list the picture of class {c}")
        path = root / entry["png"]
        if not path.is_file() or _sha256(path.read_bytes()) != entry.get("png_sha256"):
            raise BundleError(f"{path} is missing or does not match its manifest checksum")
