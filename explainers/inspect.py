"""``normlime inspect-maps``: the stimulus report a researcher reads before launching a study.

For every method of a maps bundle it measures, on the maps *as participants see them*
(:func:`explainers.bundle.display_values`, the rendering rule's numbers):

* stability: Pearson r per digit against a second bundle (``against``), and how many
  images the two runs share (a stability claim needs disjoint images);
* sparsity: the share of pixels that are exactly 0 in the stored map, that are drawn in
  the lowest colour, and that saturate at the top colour;
* NormLIME/LIME: the spread of ``|E_y(c_i)|`` over pixels (does the normalisation act?)
  from the bundle's ``local.npz``;
* the correlation with every other method (mean over digits);
* where the map's mass lies: on the digit's ink (pixels where the digit's mean image is
  at least ``INK_LEVEL``), in the 3-pixel image border, elsewhere;
* hot pixels: the share of a map's stored mass in its single largest pixel;
* mass off the class: the share of displayed mass outside the class's pixel support (the
  pixels non-zero in at least ``SUPPORT_SHARE`` of its images), and how bright the map is
  there, and in the frame outside the support, against on the support;
* near-duplicates: pairs of shown methods whose displayed maps correlate at
  r >= ``NEAR_DUPLICATE_R`` in at least half of the classes;
* the PNG byte length of every map (all must be equal: the download must not name the
  method).

Anything that would compromise a study is listed under ``flags`` with the reason.  This
module needs numpy, Pillow and matplotlib only (no torch).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .bundle import RENDER_RULE, MapsBundle, display_values, read_bundle
from .normlime import usage_spread

__all__ = [
    "BORDER",
    "INK_LEVEL",
    "STABILITY_MIN_R",
    "HOT_PIXEL_RATIO",
    "NEAR_DUPLICATE_R",
    "near_duplicate_pairs",
    "off_class",
    "ink_masks",
    "support_masks",
    "SUPPORT_SHARE",
    "pearson_per_class",
    "border_mask",
    "bundle_image_digests",
    "inspect_bundle",
    "format_report",
    "write_montage",
]

#: pixels from the image edge that count as "border" (MNIST digits are centred in a
#: 20x20 box, so the outer 4 rows and columns are almost always blank in the data)
BORDER = 3
#: a pixel is ink for a digit where that digit's mean image is at least this (in [0, 1])
INK_LEVEL = 0.2
#: a pixel is on a class's support where it is non-zero in at least this share of the
#: class's training images (docs/stimuli-protocol.md, part two)
SUPPORT_SHARE = 0.01
#: the stability criterion of the default preset (issue 9, item 3)
STABILITY_MIN_R = 0.9
#: a map has a hot pixel when its largest value is at least this many times its 99th
#: percentile: under max-scaling the map's top 1% of pixels would then be drawn at a
#: third of full brightness or less.  (The share of the mass in the top pixel is reported
#: too, but it is no criterion: a sparse map's top pixel holds a large share legitimately.)
HOT_PIXEL_RATIO = 3.0
#: two shown methods are near-duplicates when their displayed maps correlate at least this
#: much in at least half of the classes: the stability criterion, at which two runs of one
#: method count as the same map (docs/stimuli-protocol.md, part two)
NEAR_DUPLICATE_R = STABILITY_MIN_R
#: a stored map this close to constant cannot show anything
_CONSTANT_RTOL = 1e-12


def border_mask(shape: tuple[int, int] = (28, 28), width: int = BORDER) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[:width, :] = mask[-width:, :] = True
    mask[:, :width] = mask[:, -width:] = True
    return mask


def ink_masks(
    images: np.ndarray, labels: np.ndarray, level: float = INK_LEVEL, n_classes: int = 10
) -> np.ndarray:
    """(n_classes, H, W) booleans: where each class's mean image (pixels in [0, 1], the
    mean over channels for colour images) is >= level."""
    images = np.asarray(images, dtype=np.float64) / 255.0
    if images.ndim == 4:
        images = images.mean(1)
    return np.stack([images[labels == c].mean(0) >= level for c in range(n_classes)])


def support_masks(
    images: np.ndarray, labels: np.ndarray, share: float = SUPPORT_SHARE, n_classes: int = 10
) -> np.ndarray:
    """(n_classes, H, W) booleans: pixels non-zero (in any channel) in at least ``share``
    of the class's images (uint8 (N, H, W) or (N, C, H, W))."""
    images = np.asarray(images)
    nonzero = images != 0
    if nonzero.ndim == 4:
        nonzero = nonzero.any(1)
    labels = np.asarray(labels)
    return np.stack([nonzero[labels == c].mean(0) >= share for c in range(n_classes)])


def border_width(shape: tuple[int, int]) -> int:
    """BORDER pixels for MNIST's 28 x 28, the same share of smaller or larger images."""
    return max(1, round(BORDER * min(shape) / 28))


def pearson_per_class(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``a[c]`` and ``b[c]`` (flattened) for every class ``c``.

    A constant map has no defined correlation; it counts as 0 (maximally unstable).
    """
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    num = (a * b).sum(axis=1)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _displayed(maps: np.ndarray) -> np.ndarray:
    return np.stack([display_values(m) for m in maps])


def _shares(values: np.ndarray, masks: np.ndarray) -> np.ndarray:
    total = values.reshape(len(values), -1).sum(1)
    part = (values * masks).reshape(len(values), -1).sum(1)
    return np.divide(part, total, out=np.zeros_like(part), where=total > 0)


def near_duplicate_pairs(shown: dict[str, np.ndarray]) -> dict[str, dict]:
    """Every pair of methods: displayed r per class, its median, and whether the pair is a
    near-duplicate (median r >= NEAR_DUPLICATE_R)."""
    names = list(shown)
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            r = pearson_per_class(shown[a], shown[b])
            out[f"{a}|{b}"] = {
                "r_per_class": r,
                "median_r": float(np.median(r)),
                "classes_at_or_above": int((r >= NEAR_DUPLICATE_R).sum()),
                "near_duplicate": bool(np.median(r) >= NEAR_DUPLICATE_R),
            }
    return out


def off_class(shown: np.ndarray, support: np.ndarray, frame: np.ndarray) -> dict:
    """Where a method's displayed class maps (C, H, W) lie relative to each class's support.

    ``off_support_mass_share``: share of the displayed mass outside the support;
    ``off_support_brightness`` / ``frame_off_support_brightness``: the mean displayed value
    outside the support (in the frame outside the support) divided by the mean on the
    support -- 1 or more means the map is as bright where the class never has ink as where
    it does (None where the region is empty).
    """
    n = len(shown)
    vals = shown.reshape(n, -1)
    sup = support.reshape(n, -1)
    off = ~sup
    frame_off = off & frame.reshape(1, -1)

    def mean(mask):
        count = mask.sum(1)
        total = (vals * mask).sum(1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan), count

    on_mean, _ = mean(sup)
    off_mean, off_count = mean(off)
    frame_mean, frame_count = mean(frame_off)

    def ratio(x, count):
        return [
            None if c == 0 or not np.isfinite(x_) else float(x_ / o) if o > 0 else float("inf")
            for x_, o, c in zip(x, on_mean, count, strict=True)
        ]

    return {
        "off_support_mass_share": _shares(shown, off.reshape(shown.shape)),
        "off_support_brightness": ratio(off_mean, off_count),
        "frame_off_support_brightness": ratio(frame_mean, frame_count),
    }


def bundle_image_digests(root: str | Path) -> dict[str, np.ndarray]:
    """The bundle's ``images.npz`` as {method: pixel digests} ({} when it has none).

    The key ``lime`` holds the local explanations behind both NormLIME and LIME.
    """
    path = Path(root) / "images.npz"
    if not path.is_file():
        return {}
    with np.load(path) as z:
        return {k[: -len("_digest")]: z[k].ravel() for k in z.files if k.endswith("_digest")}


def _usage_spread(root: Path) -> np.ndarray | None:
    path = root / "local.npz"
    if not path.is_file():
        return None
    with np.load(path) as z:
        return usage_spread(z["usage_counts"]) if "usage_counts" in z.files else None


def _round(x, nd: int = 4):
    if isinstance(x, dict):
        return {k: _round(v, nd) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_round(v, nd) for v in x]
    if isinstance(x, np.ndarray):
        return _round(x.tolist(), nd)
    if isinstance(x, float | np.floating):
        return round(float(x), nd)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _method_images(digests: dict[str, np.ndarray], method: str) -> np.ndarray | None:
    key = "lime" if method in ("normlime", "lime") else method
    return digests.get(key)


def inspect_bundle(
    root: str | Path,
    *,
    against: str | Path | None = None,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> dict:
    """The stimulus report of the bundle at ``root`` as a JSON-ready dict.

    ``images``/``labels`` (uint8 MNIST digits) define each digit's ink; without them the
    ink shares are omitted.
    """
    bundle = read_bundle(root)
    other = read_bundle(against) if against is not None else None
    methods = bundle.methods
    shown = {m: _displayed(bundle.maps[m]) for m in methods}
    n = bundle.n_classes
    unit = "digit" if bundle.classes == [str(d) for d in range(10)] else "class"
    border = border_mask(bundle.map_shape, border_width(bundle.map_shape))
    ink = ink_masks(images, labels, n_classes=n) if images is not None else None
    support = support_masks(images, labels, n_classes=n) if images is not None else None
    digests = bundle_image_digests(bundle.root)
    other_digests = bundle_image_digests(other.root) if other is not None else {}
    report: dict = {
        "bundle": str(bundle.root),
        "against": str(other.root) if other is not None else None,
        "render": bundle.manifest.get("render", RENDER_RULE),
        "generator": bundle.manifest.get("generator"),
        "criteria": {
            "stability_min_r": STABILITY_MIN_R,
            "hot_pixel_ratio": HOT_PIXEL_RATIO,
            "border_pixels": border_width(bundle.map_shape),
            "ink_level": INK_LEVEL,
            "support_share": SUPPORT_SHARE,
            "near_duplicate_r": NEAR_DUPLICATE_R,
        },
        "methods": {},
        "flags": [],
    }
    flags: list[str] = report["flags"]
    sizes: dict[str, list[int]] = {}
    for m in methods:
        raw = bundle.maps[m].astype(np.float64).reshape(n, -1)
        vals = shown[m].reshape(n, -1)
        positive = np.clip(raw, 0, None)
        top_share = np.divide(
            positive.max(1), positive.sum(1), out=np.zeros(n), where=positive.sum(1) > 0
        )
        p99 = np.percentile(positive, 99, axis=1)
        peak_ratio = np.divide(
            positive.max(1), p99, out=np.where(positive.max(1) > 0, np.inf, 0.0), where=p99 > 0
        )
        entry: dict = {
            "exact_zero_share": (raw == 0).mean(1),
            "black_share": (np.rint(vals * 255) == 0).mean(1),
            "saturated_share": (vals >= 1.0).mean(1),
            "top_pixel_mass_share": top_share,
            "peak_to_p99": np.minimum(peak_ratio, 1e6),
            "border_mass_share": _shares(shown[m], border[None]),
            "png_bytes": [],
        }
        if ink is not None:
            entry["ink_mass_share"] = _shares(shown[m], ink)
            entry["brightest_pixel_on_ink"] = [
                bool(ink[d].ravel()[int(np.argmax(raw[d]))]) for d in range(n)
            ]
        if support is not None:
            entry.update(off_class(shown[m], support, border))
            flags += _off_class_flags(m, entry, unit)
        if m in ("normlime", "lime"):
            spread = _usage_spread(bundle.root)
            if spread is not None:
                entry["usage_cv"] = spread
                if m == "normlime" and float(np.median(spread)) < 0.05:
                    flags.append(
                        "normlime: |E_y(c_i)| is (nearly) the same for every pixel "
                        f"(median CV {np.median(spread):.3f}); NormLIME's 1/|E_y(c_i)| "
                        "normalisation does not act (dense local models?)"
                    )
        entry["correlation"] = {
            o: float(pearson_per_class(shown[m], shown[o]).mean()) for o in methods if o != m
        }
        for d in range(n):
            png = bundle.png_path(m, d)
            entry["png_bytes"].append(png.stat().st_size if png.is_file() else None)
        sizes[m] = entry["png_bytes"]
        for d in range(n):
            span = raw[d].max() - raw[d].min()
            if span <= _CONSTANT_RTOL * max(1.0, abs(raw[d]).max()):
                flags.append(f"{m} {unit} {d}: the map is constant; it shows nothing")
            elif peak_ratio[d] >= HOT_PIXEL_RATIO:
                flags.append(
                    f"{m} {unit} {d}: hot pixel: the peak holds {top_share[d]:.1%} of the map's "
                    f"mass and is {min(peak_ratio[d], 1e6):.1f}x its 99th percentile (the "
                    "rendering saturates it; check the montage)"
                )
        if other is not None and m in other.maps:
            r = pearson_per_class(shown[m], _displayed(other.maps[m]))
            mine, theirs = _method_images(digests, m), _method_images(other_digests, m)
            shared = (
                int(np.isin(mine, theirs).sum()) if mine is not None and theirs is not None
                else None
            )
            entry["stability"] = {
                "r_per_digit": r,
                "r_min": float(r.min()),
                "r_mean": float(r.mean()),
                "images_shared": shared,
                "images": int(mine.size) if mine is not None else None,
            }
            if r.min() < STABILITY_MIN_R:
                worst = int(np.argmin(r))
                flags.append(
                    f"{m}: unstable against {other.root}: r = {r.min():.3f} on {unit} {worst} "
                    f"(criterion r >= {STABILITY_MIN_R} on every {unit})"
                )
            if shared:
                flags.append(
                    f"{m}: {shared} images are used by both bundles; a stability check "
                    "needs disjoint images (precompute --disjoint-from)"
                )
        report["methods"][m] = _round(entry)
    shown_methods = [m for m in bundle.study_methods if m in shown]
    pairs = near_duplicate_pairs({m: shown[m] for m in shown_methods})
    report["pairs"] = _round(pairs)
    for key, pair in pairs.items():
        if pair["near_duplicate"]:
            a, b = key.split("|")
            flags.append(
                f"{a} and {b}: near-duplicates: their displayed maps correlate at "
                f"r >= {NEAR_DUPLICATE_R} on {pair['classes_at_or_above']} of {n} {unit}s "
                f"(median r {pair['median_r']:.3f}), as closely as two runs of one method; "
                "participants would split their votes between two copies"
            )
    all_sizes = {s for v in sizes.values() for s in v}
    report["png_bytes_equal"] = len(all_sizes) == 1
    if len(all_sizes) > 1:
        means = {m: float(np.mean(v)) for m, v in sizes.items()}
        flags.append(
            "PNG byte lengths differ between maps (mean "
            + ", ".join(f"{m} {b:,.0f}" for m, b in means.items())
            + "): a participant's browser could tell methods apart by download size"
        )
    return report


def _off_class_flags(method: str, entry: dict, unit: str) -> list[str]:
    """One flag per method and region where the map is as bright off the class's support
    as on it (mean displayed value ratio >= 1)."""
    flags = []
    for key, where in (
        ("off_support_brightness", "outside the %s's support"),
        ("frame_off_support_brightness", "in the image frame outside the %s's support"),
    ):
        bad = [(d, v) for d, v in enumerate(entry[key]) if v is not None and v >= 1.0]
        if bad:
            worst = max(v for _, v in bad)
            flags.append(
                f"{method}: as bright {where % unit} as on it on {unit} "
                f"{', '.join(str(d) for d, _ in bad)} (up to {min(worst, 1e6):.2f}x the mean "
                f"displayed value on the support): the map does not show the {unit}"
            )
    return flags


def format_report(report: dict) -> str:
    """The report as a plain-text table (what the CLI prints)."""
    methods = list(report["methods"])
    w = max(11, max((len(m) for m in methods), default=0) + 1)
    lines = [f"maps bundle {report['bundle']}"]
    if report.get("against"):
        lines.append(f"stability against {report['against']}")
    head = (
        f"{'method':<{w}}{'r min':>7}{'r mean':>8}{'shared':>7}{'zero':>6}{'black':>6}"
        f"{'sat.':>6}{'ink':>6}{'border':>7}{'off':>6}{'top px':>7}{'pk/p99':>7}{'E CV':>6}"
        f"{'bytes':>8}"
    )
    lines.append(head)
    for m in methods:
        e = report["methods"][m]
        st = e.get("stability") or {}

        def cell(v, width, fmt=".3f"):
            return f"{'-':>{width}}" if v is None else f"{v:>{width}{fmt}}"

        ink = e.get("ink_mass_share")
        off = e.get("off_support_mass_share")
        usage = e.get("usage_cv")
        lines.append(
            f"{m:<{w}}{cell(st.get('r_min'), 7)}{cell(st.get('r_mean'), 8)}"
            f"{cell(st.get('images_shared'), 7, 'd')}"
            f"{cell(float(np.mean(e['exact_zero_share'])), 6, '.2f')}"
            f"{cell(float(np.mean(e['black_share'])), 6, '.2f')}"
            f"{cell(float(np.mean(e['saturated_share'])), 6, '.2f')}"
            f"{cell(None if ink is None else float(np.mean(ink)), 6, '.2f')}"
            f"{cell(float(np.mean(e['border_mass_share'])), 7, '.2f')}"
            f"{cell(None if off is None else float(np.mean(off)), 6, '.2f')}"
            f"{cell(float(np.max(e['top_pixel_mass_share'])), 7, '.3f')}"
            f"{cell(float(np.max(e['peak_to_p99'])), 7, '.1f')}"
            f"{cell(None if usage is None else float(np.median(usage)), 6, '.2f')}"
            f"{cell(float(np.mean(e['png_bytes'])), 8, ',.0f')}"
        )
    lines.append("correlation between methods (displayed maps, mean over digits):")
    lines.append(" " * w + "".join(f"{o:>{w}}" for o in methods))
    for m in methods:
        corr = report["methods"][m]["correlation"]
        lines.append(
            f"{m:<{w}}" + "".join(f"{corr.get(o, 1.0):>{w}.3f}" for o in methods)
        )
    lines.append(
        "columns: r vs the other bundle (worst digit, mean) and images shared; share of "
        "pixels exactly 0 / drawn black / saturated; share of displayed mass on the digit's "
        f"ink, in the {report['criteria']['border_pixels']}-pixel border and off the digit's "
        "support; largest "
        "single-pixel share of the stored mass and its ratio to the 99th percentile (worst "
        "digit); median CV of |E_y(c_i)|; mean PNG bytes"
    )
    if report["flags"]:
        lines.append(f"{len(report['flags'])} flag(s):")
        lines += [f"  ! {f}" for f in report["flags"]]
    else:
        lines.append("no flags")
    return "\n".join(lines)


def write_montage(bundle: MapsBundle, path: str | Path, methods: Sequence[str] | None = None):
    """A methods x digits grid of the bundle's PNGs exactly as participants get them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    methods = list(methods or bundle.methods)
    n = bundle.n_classes
    fig, axes = plt.subplots(
        len(methods), n, figsize=(n * 1.1, len(methods) * 1.2), squeeze=False
    )
    for i, m in enumerate(methods):
        for d in range(n):
            ax = axes[i][d]
            img = Image.open(io.BytesIO(bundle.png_path(m, d).read_bytes())).convert("RGB")
            ax.imshow(np.asarray(img), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(bundle.classes[d], fontsize=10)
            if d == 0:
                ax.set_ylabel(m, fontsize=9)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def save_report(report: dict, path: str | Path) -> Path:
    Path(path).write_text(json.dumps(report, indent=1) + "\n")
    return Path(path)
