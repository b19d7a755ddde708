"""Bad input to the explainers and their commands: one readable line, exit code 2."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from normlime_cli import cli

SHIPPED = "assets/maps/mnist"
MODEL = "assets/model/mnist-cnn.pt"


def one_error_line(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    errors = [line for line in lines if line.startswith("Error: ")]
    # one error line, the last; no traceback (progress notes may come before it)
    assert errors == [lines[-1]] and "Traceback" not in result.output, result.output
    return lines[-1]


@pytest.mark.parametrize(
    "args",
    [
        ["precompute", "--model", MODEL, "--data", "embedded", "--out", "/tmp/never"],
        ["train", "--data", "embedded", "--out", "/tmp/never.pt"],
        ["kar", "--data", "embedded", "--out", "/tmp/never-kar"],
        ["occlusion", "--data", "embedded", "--out", "/tmp/never-occ"],
    ],
)
@pytest.mark.parametrize(
    "device,message",
    [("nonsense", "is not a device"), ("cuda:7", "cuda:7"), ("fpga", "use cpu, cuda")],
)
def test_bad_devices(args, device, message):
    result = CliRunner().invoke(cli, [*args, "--device", device])
    assert message in one_error_line(result)


def _bundle_copy(tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(SHIPPED, dst)
    return dst


def _rewrite_maps(bundle, mutate):
    with np.load(bundle / "maps.npz") as z:
        maps = {k: z[k].copy() for k in z.files}
    mutate(maps)
    buf = io.BytesIO()
    np.savez_compressed(buf, **maps)
    (bundle / "maps.npz").write_bytes(buf.getvalue())
    manifest = json.loads((bundle / "manifest.json").read_text())
    import hashlib

    manifest["maps_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def _drop_checksum(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.pop("maps_sha256")
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_broken_bundles(tmp_path):
    cases = []
    nan = _bundle_copy(tmp_path / "nan")
    _rewrite_maps(nan, lambda m: m["lime"].__setitem__((3, 5, 5), np.nan))
    cases.append((nan, "'lime' contains NaN"))
    truncated = _bundle_copy(tmp_path / "trunc")
    data = (truncated / "maps.npz").read_bytes()
    (truncated / "maps.npz").write_bytes(data[: len(data) // 2])
    cases.append((truncated, "does not match the checksum"))
    unchecked = _bundle_copy(tmp_path / "unchecked")
    (unchecked / "maps.npz").write_bytes(data[: len(data) // 2])
    _drop_checksum(unchecked)
    cases.append((unchecked, "is truncated or not a maps file"))
    no_png = _bundle_copy(tmp_path / "nopng")
    (no_png / "png" / "vargrad-4.png").unlink()
    cases.append((no_png, "lacks png/vargrad-4.png"))
    bad_entry = _bundle_copy(tmp_path / "badentry")
    manifest = json.loads((bad_entry / "manifest.json").read_text())
    del manifest["maps"][0]["png"]
    (bad_entry / "manifest.json").write_text(json.dumps(manifest))
    cases.append((bad_entry, "lacks its method or png"))
    for bundle, message in cases:
        r = CliRunner().invoke(cli, ["inspect-maps", str(bundle), "--out", str(tmp_path / "o")])
        assert message in one_error_line(r), (bundle, r.output)
        r = CliRunner().invoke(
            cli, ["serve", "--maps", str(bundle), "--db", f"sqlite:///{tmp_path / 'x.db'}"]
        )
        assert message in one_error_line(r), (bundle, r.output)


def test_out_of_range_targets_are_refused_by_every_explainer():
    from explainers import registry
    from explainers.model import load

    model = load(MODEL)
    x = torch.rand(2, 1, 28, 28)
    kinds = {registry.method_spec(m).kind for m in registry.ALL_METHODS}
    assert registry.LOCAL_LIME in kinds and len(kinds) == 7
    for name in sorted(kinds):
        takes_samples = name in (registry.LOCAL_LIME, "smoothgrad", "vargrad", "shap")
        params = {"n_samples": 4} if takes_samples else {}
        explainer = registry.build(name, model, random_state=0, params=params)
        with pytest.raises(ValueError, match="target 10 is out of range: the model has 10"):
            explainer.attribute(x, torch.tensor([3, 10]))
        with pytest.raises(ValueError, match="target -1 is not a class index"):
            explainer.attribute(x, -1)
        assert explainer.attribute(x, 9).shape == x.shape, name


def test_lime_refuses_inputs_outside_its_clip_range_instead_of_silent_zeros():
    from explainers.lime import LocalLime
    from explainers.model import load

    model = load(MODEL)
    standardised = (torch.rand(1, 1, 28, 28) - 0.1307) / 0.3081  # values in about [-0.4, 2.8]
    lime = LocalLime(model, n_samples=200, n_features=5, random_state=0)
    with pytest.raises(ValueError, match="outside LIME's clip range"):
        lime.explain(standardised, 3)
    wide = LocalLime(model, n_samples=200, n_features=5, random_state=0, clip=None)
    assert np.count_nonzero(wide.explain(standardised, 3).weights) > 0
