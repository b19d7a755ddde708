"""The benchmarks as Python functions: ``kar_benchmark`` and ``occlusion_benchmark``.

``normlime kar`` / ``normlime occlusion`` parse their options and call these; ``normlime
reproduce`` calls them directly.  Bad input raises :class:`BenchmarkError` (one line);
the commands show it as a user error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

__all__ = ["BenchmarkError", "kar_benchmark", "occlusion_benchmark"]


class BenchmarkError(ValueError):
    """A benchmark cannot run as asked (one readable line saying why)."""


def _stderr(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr)


def _load_data(spec: str, log):
    from explainers.data import DataError, load_mnist

    try:
        data = load_mnist(spec)
    except DataError as exc:
        raise BenchmarkError(str(exc)) from None
    log(data.summary())
    return data


def connect(scheduler):
    """A dask.distributed Client for ``scheduler`` (an address, a Client, or None)."""
    if scheduler is None or not isinstance(scheduler, str):
        return scheduler
    if "://" not in scheduler:
        raise BenchmarkError(
            f"--scheduler must be an address like tcp://host:8786, got {scheduler!r}"
        )
    from distributed import Client

    try:
        return Client(scheduler, timeout="15s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise BenchmarkError(
            f"cannot connect to the Dask scheduler at {scheduler}: {exc}"
        ) from None


def load_model(path: Path, device=None):
    """A trained model file on the device, with its path and checksum."""
    from explainers.devices import pick_device
    from explainers.model import ModelFileError, file_checksum, load

    try:
        model = load(path)
    except ModelFileError as exc:
        raise BenchmarkError(str(exc)) from None
    meta = {"path": str(path), "sha256": file_checksum(path)}
    return model.to(pick_device(device)).eval(), meta


def _check_paths(out_dir: Path, model_path: Path | None) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise BenchmarkError(f"--out {out_dir} exists and is not a directory")
    if model_path is not None and not Path(model_path).is_file():
        raise BenchmarkError(f"--model {model_path} does not exist")


@contextlib.contextmanager
def _workers(scheduler, n_jobs, threads, preset):
    """(Dask client or None, local jobs, threads per job) for a run; a resumed run whose
    settings changed is a BenchmarkError; a client this call opened is closed after."""
    from .jobs import ConfigMismatch, default_threads

    client = connect(scheduler)
    n_jobs = n_jobs or preset.jobs
    threads = threads or preset.threads or (None if client is not None else default_threads(n_jobs))
    try:
        yield client, n_jobs, threads
    except ConfigMismatch as exc:
        raise BenchmarkError(str(exc)) from None
    finally:
        if client is not None and client is not scheduler:
            client.close()


def kar_benchmark(
    out_dir: str | Path,
    *,
    features: str = "pixels",
    preset: str = "paper",
    model_path: str | Path | None = None,
    data_spec: str | None = None,
    seed: int = 0,
    n_jobs: int | None = None,
    threads: int | None = None,
    scheduler=None,
    progress: bool = True,
    log: Callable[[str], None] = _stderr,
    **overrides,
) -> Path:
    """Run (or resume) Keep-And-Retrain into ``out_dir``; return it.

    ``preset`` gives every setting; ``overrides`` replace :class:`KarSettings` fields
    (``methods``, ``fractions``, ``runs``, ...; None keeps the preset's).
    """
    from .kar import KarSettings, run_kar
    from .presets import kar_preset

    out_dir = Path(out_dir)
    p = kar_preset(preset, features)
    settings = KarSettings(
        features=features, methods=p.methods, fractions=p.fractions, runs=p.runs,
        train_size=p.train_size, test_size=p.test_size, epochs=p.epochs,
        explain_per_class=p.explain_per_class, method_params=p.method_params, seed=seed,
    )  # fmt: skip
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    settings.validate()
    _check_paths(out_dir, model_path)
    data = _load_data(data_spec or p.data, log)
    with _workers(scheduler, n_jobs, threads, p) as (client, n_jobs, threads):
        log(
            f"KAR {settings.features}, {settings.ranking} ranking, preset {preset}: "
            f"{len(settings.methods)} methods x {len(settings.fractions)} fractions x "
            f"{settings.runs} runs; train {settings.train_size or 'all'}, "
            f"{settings.epochs} epochs; "
            + (f"Dask at {scheduler}" if client else f"{n_jobs} local job(s) x {threads} "
               "thread(s)")
        )  # fmt: skip
        run_kar(
            settings, data, out_dir, model_path=model_path, n_jobs=n_jobs, scheduler=client,
            threads=threads, progress=progress, log=log,
        )  # fmt: skip
    return out_dir


def occlusion_benchmark(
    out_dir: str | Path,
    *,
    preset: str = "paper",
    model_path: str | Path | None = None,
    data_spec: str | None = None,
    seed: int = 0,
    n_jobs: int | None = None,
    threads: int | None = None,
    scheduler=None,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = _stderr,
    **overrides,
) -> Path:
    """Run (or resume) the occlusion benchmark into ``out_dir``; return it.

    Without ``model_path`` the preset's model is trained once into ``out_dir/model.pt``.
    ``overrides`` replace :class:`OcclusionSettings` fields (None keeps the preset's).
    """
    from .occlusion import OcclusionSettings, run_occlusion
    from .presets import occlusion_preset

    out_dir = Path(out_dir)
    p = occlusion_preset(preset)
    settings = OcclusionSettings(
        methods=p.methods, images=p.images, step=p.step, explain_per_class=p.explain_per_class,
        method_params=p.method_params, seed=seed, device=device,
    )  # fmt: skip
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    settings.validate()
    _check_paths(out_dir, model_path)
    data = _load_data(data_spec or p.data, log)
    if model_path is not None:
        model, meta = load_model(Path(model_path), device)
    else:
        model, meta = _train_model(data, p, seed, device, out_dir, log)
    with _workers(scheduler, n_jobs, threads, p) as (client, n_jobs, threads):
        run_occlusion(
            settings, data, model, out_dir, model_meta=meta, n_jobs=n_jobs, scheduler=client,
            threads=threads, progress=progress, log=log,
        )  # fmt: skip
    return out_dir


def _train_model(data, preset, seed: int, device, out_dir: Path, log):
    """The preset's model, trained once and kept in ``out_dir/model.pt``."""
    import json

    from explainers.devices import pick_device
    from explainers.model import file_checksum
    from explainers.train import TrainConfig, train_to_file

    from .kar import subset_data

    path = out_dir / "model.pt"
    if path.exists():
        model, meta = load_model(path, device)
        return model, {**json.loads(path.with_suffix(".json").read_text()), **meta}
    sub = subset_data(data, preset.model_train_size, None, seed)
    log(f"training the model to explain ({preset.model_epochs} epochs, seed {seed})")
    out_dir.mkdir(parents=True, exist_ok=True)
    result = train_to_file(
        sub, TrainConfig(epochs=preset.model_epochs, seed=seed), path, device=device
    )
    meta = {**json.loads(path.with_suffix(".json").read_text()), "path": str(path),
            "sha256": file_checksum(path)}  # fmt: skip
    return result.model.to(pick_device(device)).eval(), meta
