"""Local LIME explanations on a dask.distributed cluster (``precompute --scheduler``).

The client (``normlime precompute``) decides which explanations are missing from the
on-disk cache, cuts them into chunks and submits one task per chunk.  The model file's
bytes go to every worker once (``scatter(broadcast=True)``); a worker builds the model and
its forward function once per process and reuses them for every chunk.  Results come back
as they finish and are written into the cache at once, so an interrupted run (a crash, a
Ctrl-C, a lost worker) resumes with only the unfinished chunks, and the client holds no
more than the weight matrix it is assembling.

An explanation depends only on its image, target, parameters and noise seed, not on the
chunk or the worker, so a Dask run writes the maps a local run writes (up to float
reductions that depend on the thread count; ``tests/test_precompute_dask.py``).

A data neighbourhood (its pool of images and the model's outputs on them) also goes to
every worker once, scattered like the model; a worker keeps the explainer it built for
the (model, parameters, pool) it was sent.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["explain_chunks_on_dask", "explain_chunk"]

#: how long to wait for the scheduler before giving up (seconds)
CONNECT_TIMEOUT_S = 10
_WORKER_STATE: dict[str, tuple] = {}
_WORKER_LOCK = threading.Lock()


def _worker_lime(model_bytes: bytes, lime_kwargs: dict, threads: int | None, neighbourhood=None):
    """This worker process's model, forward function and explainer (built once)."""
    import torch

    from .lime import LocalLime, inference_forward, retain_freed_memory
    from .model import load_bytes

    key = hashlib.sha256(model_bytes).hexdigest() + repr(sorted(lime_kwargs.items()))
    if neighbourhood is not None:
        key += neighbourhood.digest + repr(neighbourhood.effective_size)
        lime_kwargs = {**lime_kwargs, "neighbourhood": neighbourhood}
    with _WORKER_LOCK:
        if key not in _WORKER_STATE:
            # a worker process exists to run these tasks: take the same malloc setting as
            # `normlime precompute` does for itself (~1.7x faster forward passes)
            retain_freed_memory()
            if threads:
                torch.set_num_threads(int(threads))
            model = load_bytes(model_bytes)
            forward = inference_forward(model, compile=False)
            _WORKER_STATE[key] = (LocalLime(forward, **lime_kwargs),)  # fits inline
        return _WORKER_STATE[key][0]


def explain_chunk(
    model_bytes: bytes,
    lime_kwargs: dict,
    images: np.ndarray,
    targets: np.ndarray,
    seeds: np.ndarray,
    threads: int | None = None,
    neighbourhood=None,
) -> dict:
    """One task: the local explanations of a chunk of images (runs on a worker)."""
    import torch

    lime = _worker_lime(model_bytes, lime_kwargs, threads, neighbourhood)
    part = lime.explain(torch.from_numpy(images), torch.from_numpy(targets), seeds=seeds)
    return {
        "weights": part.weights.astype(np.float32),
        "intercept": part.intercept,
        "r2": part.r2,
        "prob": part.prob,
    }


def explain_chunks_on_dask(
    scheduler,
    *,
    model_bytes: bytes,
    lime_kwargs: dict,
    images: np.ndarray,
    targets: np.ndarray,
    seeds: np.ndarray,
    chunks: list[np.ndarray],
    threads: int | None = None,
) -> Iterator[tuple[np.ndarray, dict]]:
    """Yield ``(rows, result)`` for every chunk of row indices, in completion order."""
    from distributed import Client, as_completed

    own = not isinstance(scheduler, Client)
    client = Client(scheduler, timeout=CONNECT_TIMEOUT_S) if own else scheduler
    futures: dict = {}
    lime_kwargs = dict(lime_kwargs)
    neighbourhood = lime_kwargs.pop("neighbourhood", None)
    try:
        [model_f] = client.scatter([model_bytes], broadcast=True)
        nb_f = None
        if neighbourhood is not None:
            [nb_f] = client.scatter([neighbourhood], broadcast=True)
        token = uuid.uuid4().hex[:12]  # task keys must be unique per submission
        for n, rows in enumerate(chunks):
            future = client.submit(
                explain_chunk,
                model_f,
                lime_kwargs,
                np.ascontiguousarray(images[rows]),
                np.asarray(targets[rows], dtype=np.int64),
                np.asarray(seeds[rows], dtype=np.int64),
                threads,
                nb_f,
                key=f"lime-chunk-{n}-{token}",
                pure=False,
            )
            futures[future.key] = (future, rows)
        for future in as_completed([f for f, _ in futures.values()]):
            yield futures[future.key][1], future.result()
    finally:
        for future, _ in futures.values():
            if not future.done():
                future.cancel()
        if own:
            client.close()


def dask_runner(scheduler, model_bytes: bytes, threads: int | None = None) -> Callable:
    """A ``run_chunks(lime_kwargs, images, targets, seeds, chunks)`` for ``explain_cached``."""

    def run(lime_kwargs, images, targets, seeds, chunks):
        return explain_chunks_on_dask(
            scheduler,
            model_bytes=model_bytes,
            lime_kwargs=lime_kwargs,
            images=images,
            targets=targets,
            seeds=seeds,
            chunks=chunks,
            threads=threads,
        )

    return run
