"""The job grid: resume after an interruption, config guard, joblib and Dask = local."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from analysis.benchmarks.jobs import ConfigMismatch, Job, JobStore, derive_seed, run_jobs
from analysis.benchmarks.kar import KarSettings, kar_job, kar_jobs
from tests.test_kar import SIGNAL, make_synthetic, synthetic_context

CONFIG = {"experiment": "tiny synthetic KAR"}


@pytest.fixture(scope="module")
def tiny():
    data = make_synthetic(300, 200, seed=3)
    rankings = {
        "truth": {"kind": "global", "scores": SIGNAL.reshape(-1) * 1.0, "per_image": {}},
        "random": {
            "kind": "global",
            "scores": np.random.default_rng(2).random(784),
            "per_image": {},
        },
    }
    settings = KarSettings(methods=("truth", "random"), fractions=(0.5, 0.9), runs=1, epochs=1)
    return kar_jobs(settings), synthetic_context(settings, data, rankings)


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    jobs, ctx = tiny
    store = JobStore(tmp_path_factory.mktemp("ref") / "jobs.jsonl", CONFIG)
    return run_jobs(kar_job, jobs, ctx, store, threads=1, progress=False)


def table(rows):
    return sorted((r["job_id"], r["seed"], r["accuracy"], r["final_loss"]) for r in rows)


def test_interrupted_run_resumes_without_redoing_jobs_and_gives_the_same_table(
    tiny, reference, tmp_path
):
    jobs, ctx = tiny
    path = tmp_path / "jobs.jsonl"
    seen = []

    def interrupt_after_two(row):
        seen.append(row["job_id"])
        if len(seen) == 2:
            raise KeyboardInterrupt  # Ctrl-C between two jobs

    with pytest.raises(KeyboardInterrupt):
        run_jobs(
            kar_job,
            jobs,
            ctx,
            JobStore(path, CONFIG),
            threads=1,
            progress=False,
            on_record=interrupt_after_two,
        )
    assert [r["job_id"] for r in JobStore(path, CONFIG).records()] == seen
    with open(path, "a") as fh:  # a crash in the middle of writing the third row
        fh.write('{"job_id": "kar|truth|0.9|0", "accu')
    executed = []
    rows = run_jobs(
        kar_job,
        jobs,
        ctx,
        JobStore(path, CONFIG),
        threads=1,
        progress=False,
        on_record=lambda r: executed.append(r["job_id"]),
    )
    assert len(executed) == len(jobs) - 2
    assert not set(executed) & set(seen)
    assert table(rows) == table(reference)
    assert len(path.read_text().splitlines()) == len(jobs)


def test_store_refuses_to_mix_configurations(tmp_path):
    path = tmp_path / "jobs.jsonl"
    store = JobStore(path, {"epochs": 1, "seed": 0})
    store.append({"job_id": "a", "value": np.float64(0.5)})
    assert json.loads(path.read_text())["value"] == 0.5
    with pytest.raises(ConfigMismatch, match="differs in: epochs"):
        JobStore(path, {"epochs": 2, "seed": 0})
    assert JobStore(path, {"epochs": 1, "seed": 0}).done_ids() == {"a"}


def test_seeds_are_stable_across_processes_and_recorded(reference):
    # sha256-based, not hash(): the same on every worker and machine
    assert derive_seed("kar-run", 0, 0) == 1956329347
    assert all(r["seed"] == derive_seed("kar-run", 0, r["run"]) for r in reference)


def test_dask_cluster_and_joblib_processes_give_the_local_numbers(tiny, reference, tmp_path):
    from distributed import LocalCluster

    jobs, ctx = tiny
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        dask_rows = run_jobs(
            kar_job,
            jobs,
            ctx,
            JobStore(tmp_path / "dask.jsonl", CONFIG),
            scheduler=cluster.scheduler_address,
            threads=1,
            progress=False,
        )
    assert table(dask_rows) == table(reference)
    joblib_rows = run_jobs(
        kar_job,
        jobs,
        ctx,
        JobStore(tmp_path / "joblib.jsonl", CONFIG),
        n_jobs=2,
        threads=1,
        progress=False,
    )
    assert table(joblib_rows) == table(reference)
    # they really ran in other processes
    assert {r["worker"].rsplit(":", 1)[1] for r in joblib_rows} != {str(os.getpid())}


def test_job_ids_must_be_unique(tmp_path):
    jobs = [Job("x", 1), Job("x", 2)]
    with pytest.raises(ValueError, match="unique"):
        run_jobs(kar_job, jobs, {}, JobStore(tmp_path / "j.jsonl", CONFIG), progress=False)
