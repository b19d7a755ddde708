"""Running a benchmark as a grid of independent jobs: locally (joblib) or on Dask.

A benchmark (KAR, occlusion) is a list of :class:`Job` s -- one per (method, fraction, run)
or (method, image) -- plus one *context* shared by all of them (data, model weights,
rankings: numpy arrays and plain values).  :func:`run_jobs` executes the jobs that are not
finished yet and appends every result to a :class:`JobStore` (a JSON-lines file) the moment
it arrives, so an interrupted run resumes where it stopped and never redoes a finished job.

Executors:

* ``n_jobs=1`` and no scheduler: in this process, in grid order (simplest to debug);
* ``n_jobs>1``: joblib's ``loky`` worker processes; large context arrays are memory-mapped
  to the workers by joblib, not copied per job;
* ``scheduler="tcp://host:port"`` (or a ``distributed.Client``): a dask.distributed cluster;
  the context is scattered to the workers once (``broadcast=True``).

Reproducibility: every job carries its own seed (recorded in its result row).  Torch's RNG
is process-global, so jobs that share a process run one at a time (a process-wide lock);
``threads`` pins torch's intra-op thread count inside each job, because float reductions
may depend on it.  With the same seeds and ``threads``, every executor gives the same
numbers (``tests/test_jobs.py`` checks local against a Dask LocalCluster).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Job",
    "JobStore",
    "ConfigMismatch",
    "run_jobs",
    "config_fingerprint",
    "derive_seed",
    "default_threads",
]

JobFunc = Callable[[dict, "Job"], dict]

_PROCESS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Job:
    """One unit of work: an identifier, its parameters and its seed.

    ``params`` must be JSON-serialisable; they are copied into the job's result row, so a
    row says exactly which job produced it.
    """

    id: str
    seed: int
    params: dict = field(default_factory=dict)


def derive_seed(*parts: int | str) -> int:
    """A 31-bit seed derived from ``parts`` (stable across processes and machines).

    ``hash()`` is salted per process, so it cannot be used for seeds that workers on
    other machines must reproduce.
    """
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "big") & 0x7FFFFFFF


def config_fingerprint(config: dict) -> str:
    """sha256 of a configuration's canonical JSON (what decides whether a run can resume)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def default_threads(n_workers: int) -> int:
    """Torch threads per job: the machine's cores shared evenly among the workers."""
    return max(1, (os.cpu_count() or 1) // max(1, n_workers))


class ConfigMismatch(ValueError):
    """The output directory holds results of a different configuration."""


class JobStore:
    """Finished jobs of one benchmark, one JSON object per line, appended as they finish.

    The first use writes ``<path>.config.json`` (the configuration and its fingerprint);
    reopening the store with a different configuration raises :class:`ConfigMismatch`
    instead of mixing results of two experiments.  A line cut short by a crash (no final
    newline) is dropped on open and its job is run again.
    """

    def __init__(self, path: str | Path, config: dict):
        self.path = Path(path)
        self.config_path = self.path.with_name(self.path.stem + ".config.json")
        self.fingerprint = config_fingerprint(config)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.config_path.exists():
            stored = json.loads(self.config_path.read_text())
            if stored.get("fingerprint") != self.fingerprint:
                changed = sorted(
                    k
                    for k in set(stored.get("config", {})) | set(config)
                    if json.dumps(stored.get("config", {}).get(k), sort_keys=True, default=str)
                    != json.dumps(config.get(k), sort_keys=True, default=str)
                )
                raise ConfigMismatch(
                    f"{self.path.parent} holds results of a different configuration "
                    f"(differs in: {', '.join(changed) or 'unknown'}); "
                    "use another --out directory or delete it"
                )
        else:
            blob = {"fingerprint": self.fingerprint, "config": config}
            self.config_path.write_text(json.dumps(blob, indent=2, sort_keys=True, default=str))
        self._repair_tail()

    def _repair_tail(self) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            keep = raw[: raw.rfind(b"\n") + 1]
            self.path.write_bytes(keep)

    def records(self) -> list[dict]:
        """Every finished job's row, in the order they finished."""
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            if line.strip():
                rows.append(json.loads(line))
        return rows

    def done_ids(self) -> set[str]:
        return {r["job_id"] for r in self.records()}

    def append(self, record: dict) -> None:
        """Write one row durably (flush + fsync) before the next job's result is taken."""
        line = json.dumps(record, sort_keys=True, default=_jsonable) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def _jsonable(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    raise TypeError(f"cannot store {type(value).__name__} in a job record")


def execute(fn: JobFunc, context: dict, job: Job, threads: int | None) -> dict:
    """Run one job where it lands (worker process, Dask worker or here) and time it."""
    with _PROCESS_LOCK:
        previous = None
        if threads:
            import torch

            previous = torch.get_num_threads()
            if previous != threads:
                torch.set_num_threads(threads)
        t0 = time.perf_counter()
        try:
            result = fn(context, job)
        finally:
            if previous is not None and previous != threads:
                torch.set_num_threads(previous)  # leave the caller's process as it was
        wall = time.perf_counter() - t0
    row = {"job_id": job.id, "seed": job.seed, **job.params, **result}
    row["wall_s"] = round(wall, 3)
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return row


def run_jobs(
    fn: JobFunc,
    jobs: Sequence[Job],
    context: dict,
    store: JobStore,
    *,
    n_jobs: int = 1,
    scheduler=None,
    threads: int | None = None,
    progress: bool = True,
    desc: str = "jobs",
    on_record: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Run the unfinished ``jobs`` and return every finished row (old and new).

    ``fn(context, job) -> dict`` must be a module-level function (workers import it).
    ``on_record(row)`` is called after each row is stored (progress hooks, tests).
    """
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        raise ValueError("job ids must be unique")
    done = store.done_ids()
    todo = [j for j in jobs if j.id not in done]
    bar = _progress_bar(len(jobs), len(jobs) - len(todo), desc, progress)
    try:
        if todo:
            if scheduler is not None:
                results = _dask_results(fn, todo, context, scheduler, threads)
            elif n_jobs == 1:
                results = (execute(fn, context, j, threads) for j in todo)
            else:
                results = _joblib_results(fn, todo, context, n_jobs, threads)
            for row in results:
                store.append(row)
                bar.update(1)
                if on_record is not None:
                    on_record(row)
    finally:
        bar.close()
    wanted = set(ids)
    return [r for r in store.records() if r["job_id"] in wanted]


def _progress_bar(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="job",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
    )


def _joblib_results(fn, todo, context, n_jobs, threads) -> Iterable[dict]:
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")
    yield from parallel(delayed(execute)(fn, context, j, threads) for j in todo)


def _dask_results(fn, todo, context, scheduler, threads) -> Iterable[dict]:
    from distributed import Client, as_completed

    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    futures = []
    try:
        [ctx] = client.scatter([context], broadcast=True)
        token = uuid.uuid4().hex[:12]  # keys must be unique per submission
        futures = [
            client.submit(execute, fn, ctx, j, threads, pure=False, key=f"{j.id}-{token}")
            for j in todo
        ]
        for future in as_completed(futures):
            yield future.result()
    finally:
        for f in futures:
            if not f.done():
                f.cancel()
        if own:
            client.close()
