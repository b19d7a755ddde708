"""``normlime precompute --scheduler``: the local explanations on a Dask cluster write the
maps a local run writes, stream into the cache, and an interrupted run resumes."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

SHIPPED_MODEL = "assets/model/mnist-cnn.pt"
SMALL = {"preset": "demo", "per_class": 3, "samples": 300, "seed": 11}


def _run(tmp_path, name, **kw):
    from explainers.data import load_mnist
    from explainers.precompute import precompute

    return precompute(
        model_path=SHIPPED_MODEL,
        data=load_mnist("embedded"),
        out_dir=tmp_path / name,
        methods=("normlime", "lime"),
        compile_model=False,
        progress=False,
        log=lambda line: None,
        **SMALL,
        **kw,
    )


@pytest.mark.timeout(300)
def test_dask_run_writes_the_maps_of_a_local_run(tmp_path):
    from distributed import LocalCluster

    local = _run(tmp_path, "local", use_cache=False)
    cache = tmp_path / "cache"
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        dask = _run(tmp_path, "dask", cache_dir=cache, scheduler=cluster.scheduler_address)
    for method in ("normlime", "lime"):
        a, b = local.maps[method].reshape(10, -1), dask.maps[method].reshape(10, -1)
        r = [np.corrcoef(a[d], b[d])[0, 1] for d in range(10)]
        assert min(r) > 0.9999, (method, r)
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6 * float(np.abs(a).max()))
    with (
        np.load(tmp_path / "local" / "local.npz") as x,
        np.load(tmp_path / "dask" / "local.npz") as y,
    ):
        np.testing.assert_array_equal(x["pred_label"], y["pred_label"])
        np.testing.assert_allclose(x["r2"], y["r2"], atol=1e-6)
    assert dask.manifest["generator"]["scheduler"] == cluster.scheduler_address
    # every explanation was streamed into the cache: a rerun computes nothing
    again = _run(tmp_path, "again", cache_dir=cache)
    assert again.cache_hits == again.n_local == 30
    np.testing.assert_array_equal(again.maps["normlime"], dask.maps["normlime"])


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    from normlime_cli import cli

    r = CliRunner().invoke(
        cli,
        ["precompute", "--model", SHIPPED_MODEL, "--data", "embedded", "--preset", "demo",
         "--per-class", "2", "--methods", "lime", "--no-cache", "--quiet",
         "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "x")],
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines()[-1].startswith("Error: cannot use the Dask scheduler")
