"""The stimuli carry no cue to their method: one rendering rule, equal bytes, a report
that finds defects (issue 9, items 4-6 and 8)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from explainers.bundle import (
    DISPLAY_PERCENTILE,
    RENDER_RULE,
    STUDY_METHODS,
    _colormap_table,
    display_values,
    read_bundle,
    render_png,
    write_bundle,
)
from explainers.inspect import format_report, inspect_bundle
from normlime_cli import cli


def _typical_maps(seed: int = 0) -> dict[str, np.ndarray]:
    """Maps shaped like each method's: sparse and signed-positive (LIME family) or dense
    and heavy-tailed (gradients), with very different units."""
    rng = np.random.default_rng(seed)
    sparse = np.where(rng.random((10, 28, 28)) < 0.1, rng.exponential(1e-4, (10, 28, 28)), 0)
    return {
        "normlime": sparse.astype(np.float32),
        "lime": np.sqrt(sparse).astype(np.float32),
        "smoothgrad": (rng.standard_normal((10, 28, 28)) ** 4 * 50.0).astype(np.float32),
        "vargrad": (rng.gamma(0.5, 3.0, (10, 28, 28))).astype(np.float32),
    }


def _smooth_maps(seed: int = 0) -> dict[str, np.ndarray]:
    """Well-behaved maps: one broad blob per digit and method, plus mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    maps = {}
    for k, m in enumerate(STUDY_METHODS):
        arr = np.zeros((10, 28, 28), np.float32)
        for d in range(10):
            cy, cx = rng.uniform(8, 20, 2)
            arr[d] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 40.0) * 10.0**k
            arr[d] += 0.05 * 10.0**k * rng.random((28, 28))
        maps[m] = arr
    return maps


def _rgb(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_every_png_has_the_same_byte_length_whatever_the_map(tmp_path):
    maps = _typical_maps()
    maps["normlime"][3] = 0.0  # an all-zero map
    maps["lime"][4] = 1.0  # a constant map
    write_bundle(tmp_path, maps)
    sizes = {p.stat().st_size for p in (tmp_path / "png").glob("*.png")}
    assert len(list((tmp_path / "png").glob("*.png"))) == 40
    assert len(sizes) == 1, sizes
    report = inspect_bundle(tmp_path)
    assert report["png_bytes_equal"]


def test_the_rule_depends_on_the_values_only_not_on_the_method(tmp_path):
    """The same numbers render to the same bytes under every method's name, and a map
    scaled by any positive factor (other units) renders identically."""
    arr = _typical_maps()["smoothgrad"]
    write_bundle(tmp_path, {m: arr * (10.0 ** k) for k, m in enumerate(STUDY_METHODS)})
    for d in range(10):
        files = {(tmp_path / f"png/{m}-{d}.png").read_bytes() for m in STUDY_METHODS}
        assert len(files) == 1


def test_negative_values_and_exact_zeros_get_the_same_lowest_colour():
    m = np.linspace(0.0, 1.0, 784).reshape(28, 28)
    m[0, :5] = [-3.0, -1e-9, 0.0, -0.5, 0.0]
    rgb = _rgb(render_png(m))
    lowest = _colormap_table(RENDER_RULE["colormap"])[0]
    for col in range(5):
        assert (rgb[0:8, 8 * col : 8 * col + 8] == lowest).all()


def test_a_hot_pixel_cannot_blank_the_rest_of_the_map():
    rng = np.random.default_rng(1)
    base = rng.random((28, 28)) + 0.5
    hot = base.copy()
    hot[14, 14] = 1e6
    shown, shown_hot = display_values(base), display_values(hot)
    assert shown_hot[14, 14] == 1.0
    # every other pixel keeps (nearly) its brightness: the 99th percentile barely moves
    others = np.ones((28, 28), bool)
    others[14, 14] = False
    assert np.abs(shown_hot[others] - shown[others]).max() < 0.02
    assert np.median(shown_hot) > 0.5
    # under max-normalisation the same map would be black but for one pixel
    assert np.median(hot / hot.max()) < 1e-5


def test_display_values_follow_the_stated_percentile_rule():
    m = np.arange(784, dtype=np.float64).reshape(28, 28) - 100.0
    clipped = np.clip(m, 0, None)
    expected = np.minimum(clipped / np.percentile(clipped, DISPLAY_PERCENTILE), 1.0)
    np.testing.assert_allclose(display_values(m), expected)
    assert (display_values(m) >= 1.0).sum() == 8  # the top 1% of 784 saturates
    # a map with fewer than 1% positive pixels falls back to its maximum
    few = np.zeros((28, 28))
    few[3, 3], few[5, 5] = 2.0, 1.0
    np.testing.assert_allclose(display_values(few), few / 2.0)
    assert display_values(np.zeros((28, 28))).max() == 0.0
    assert str(int(DISPLAY_PERCENTILE)) in RENDER_RULE["normalisation"]


def test_the_manifest_records_the_rule(tmp_path):
    write_bundle(tmp_path, _typical_maps())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["render"] == RENDER_RULE
    assert "shared_scale" in manifest["render"]


# ----------------------------------------------------------------------------- inspect-maps


def _defective_bundle(root):
    maps = _smooth_maps()
    maps["smoothgrad"][2] = 0.5  # a constant map
    rng = np.random.default_rng(3)
    maps["vargrad"][8] = rng.random((28, 28)).astype(np.float32)
    maps["vargrad"][8, 0, 0] = 500.0  # a hot pixel, in the border
    write_bundle(root, maps)
    return root


def test_inspect_reports_a_constant_map_and_a_hot_pixel(tmp_path):
    report = inspect_bundle(_defective_bundle(tmp_path / "b"))
    flags = "\n".join(report["flags"])
    assert "smoothgrad digit 2: the map is constant" in flags
    assert "vargrad digit 8: hot pixel" in flags
    assert report["methods"]["vargrad"]["top_pixel_mass_share"][8] > 0.5
    assert report["methods"]["vargrad"]["peak_to_p99"][8] > 100
    # the clean maps of the same bundle raise nothing
    assert len(report["flags"]) == 2, flags


def test_inspect_finds_unequal_bytes_and_instability(tmp_path):
    a = tmp_path / "a"
    write_bundle(a, _smooth_maps(0))
    b = tmp_path / "b"
    write_bundle(b, _smooth_maps(1))  # blobs elsewhere
    png = b / "png" / "lime-0.png"
    png.write_bytes(png.read_bytes())  # unchanged, checksums still verify
    report = inspect_bundle(a, against=b)
    for m in STUDY_METHODS:
        st = report["methods"][m]["stability"]
        assert st["r_min"] < 0.5 and len(st["r_per_digit"]) == 10
    assert any("unstable against" in f for f in report["flags"])
    text = format_report(report)
    assert "r min" in text and "flag(s)" in text


def test_inspect_measures_ink_and_border_shares(tmp_path):
    images = np.zeros((20, 28, 28), np.uint8)
    images[:, 10:18, 10:18] = 255  # every digit's "ink" is the central square
    labels = np.repeat(np.arange(10), 2)
    maps = {m: np.zeros((10, 28, 28), np.float32) for m in STUDY_METHODS}
    maps["normlime"][:, 10:18, 10:18] = 1.0  # all mass on the ink
    maps["lime"][:, :3, :] = 1.0  # all mass in the border
    maps["smoothgrad"][:] = 1.0
    maps["vargrad"][:, 12, 12] = 1.0
    write_bundle(tmp_path, maps)
    report = inspect_bundle(tmp_path, images=images, labels=labels)
    nl, lime = report["methods"]["normlime"], report["methods"]["lime"]
    assert nl["ink_mass_share"] == [1.0] * 10 and nl["border_mass_share"] == [0.0] * 10
    assert lime["border_mass_share"] == [1.0] * 10 and lime["ink_mass_share"] == [0.0] * 10
    assert report["methods"]["vargrad"]["brightest_pixel_on_ink"] == [True] * 10


def test_inspect_maps_cli_writes_json_and_montage_and_rejects_bad_input(tmp_path):
    bundle = _defective_bundle(tmp_path / "b")
    out = tmp_path / "report"
    runner = CliRunner()
    result = runner.invoke(cli, ["inspect-maps", str(bundle), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "hot pixel" in result.output
    report = json.loads((out / "inspect.json").read_text())
    assert set(report["methods"]) == set(STUDY_METHODS)
    montage = Image.open(out / "montage.png")
    assert montage.size[0] > montage.size[1] > 100
    strict = runner.invoke(cli, ["inspect-maps", str(bundle), "--out", str(out), "--strict"])
    assert strict.exit_code == 1
    bad = runner.invoke(cli, ["inspect-maps", str(tmp_path / "nothing"), "--out", str(out)])
    assert bad.exit_code == 2
    assert [ln for ln in bad.output.splitlines() if ln.startswith("Error")][0].count(
        "not a maps bundle"
    ) == 1
    assert read_bundle(bundle)  # nothing in the bundle was changed


@pytest.mark.parametrize("method", STUDY_METHODS)
def test_shipped_pngs_are_all_the_same_length(method, repo_root):
    root = repo_root / "assets" / "maps" / "mnist"
    sizes = {(root / f"png/{m}-{d}.png").stat().st_size for m in STUDY_METHODS for d in range(10)}
    assert len(sizes) == 1
    assert (root / f"png/{method}-0.png").stat().st_size in sizes


# ----------------------------------------------------------------------------- issue 20 flags


def _digits_with_support():
    """Class c's images have ink only in its own 6x6 square (the support); every image
    also lights a few pixels of that square, so the support is the square."""
    rng = np.random.default_rng(0)
    images = np.zeros((200, 28, 28), np.uint8)
    labels = np.repeat(np.arange(10), 20)
    corners = [(4 + 6 * (c % 3), 4 + 6 * (c // 3) % 18) for c in range(10)]
    for i, c in enumerate(labels):
        y, x = corners[c]
        images[i, y : y + 6, x : x + 6] = rng.integers(60, 255, (6, 6))
    return images, labels, corners


def _clean_maps(corners, seed=0):
    """Four methods, each bright on its own part of the class's support, all different."""
    rng = np.random.default_rng(seed)
    maps = {m: np.zeros((10, 28, 28), np.float32) for m in STUDY_METHODS}
    parts = {"normlime": (0, 0), "lime": (3, 3), "smoothgrad": (0, 3), "vargrad": (3, 0)}
    for c, (y, x) in enumerate(corners):
        for m, (dy, dx) in parts.items():
            maps[m][c, y + dy : y + dy + 3, x + dx : x + dx + 3] = 1.0 + rng.random((3, 3))
            maps[m][c] += 0.01 * rng.random((28, 28))  # faint everywhere else
    return maps


def test_inspect_flags_near_duplicate_methods_and_stays_quiet_on_distinct_ones(tmp_path):
    images, labels, corners = _digits_with_support()
    clean = _clean_maps(corners)
    write_bundle(tmp_path / "clean", clean)
    quiet = inspect_bundle(tmp_path / "clean", images=images, labels=labels)
    assert quiet["flags"] == [], quiet["flags"]
    assert not any(p["near_duplicate"] for p in quiet["pairs"].values())
    copies = dict(clean)
    rng = np.random.default_rng(1)
    copies["lime"] = clean["normlime"] * 1.7 + 0.02 * rng.random((10, 28, 28)).astype(np.float32)
    write_bundle(tmp_path / "copies", copies)
    report = inspect_bundle(tmp_path / "copies", images=images, labels=labels)
    assert report["pairs"]["normlime|lime"]["near_duplicate"]
    assert report["pairs"]["normlime|lime"]["classes_at_or_above"] == 10
    assert [f for f in report["flags"] if "near-duplicates" in f] == [
        next(f for f in report["flags"] if f.startswith("normlime and lime: near-duplicates"))
    ]


def test_inspect_flags_maps_that_light_the_frame_or_leave_the_support(tmp_path):
    images, labels, corners = _digits_with_support()
    maps = _clean_maps(corners)
    maps["normlime"][3, -3:, :] = 5.0  # a bright bar along the bottom edge: no ink there
    # spread evenly over the image: as bright off the support as on it
    maps["vargrad"][7] = 0.5 + np.random.default_rng(2).random((28, 28))
    write_bundle(tmp_path / "b", maps)
    report = inspect_bundle(tmp_path / "b", images=images, labels=labels)
    flags = report["flags"]
    frame = [f for f in flags if "in the image frame outside" in f]
    off = [f for f in flags if "as bright outside the digit's support" in f]
    assert any(f.startswith("normlime:") and "digit 3 " in f for f in frame), flags
    assert any(f.startswith("vargrad:") and "digit 7 " in f for f in off), flags
    # nothing else is flagged: the other digits and methods stay on their support
    assert len(flags) == len(frame) + len(off)
    assert all(("digit 3 " in f) or ("digit 7 " in f) for f in flags)
    nl = report["methods"]["normlime"]
    assert nl["frame_off_support_brightness"][3] > 1 > nl["frame_off_support_brightness"][0]
    assert report["methods"]["vargrad"]["off_support_mass_share"][7] > 0.9
