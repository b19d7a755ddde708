"""The bundle ``normlime up`` builds when asked to serve maps that do not exist yet.

The model (``normlime train --data embedded``'s settings) is trained when missing, then the
``demo`` preset's maps are computed on the embedded subset.  Torch is imported only when
:func:`build_demo_bundle` runs, so the web side can name this function without loading it
(``up`` runs it in a child process; see ``study_server.cli.ensure_bundle``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["build_demo_bundle"]


def build_demo_bundle(maps_dir: str | Path, model_path: str | Path) -> None:
    from .data import load_mnist
    from .lime import retain_freed_memory
    from .precompute import precompute
    from .train import TrainConfig, train_to_file

    retain_freed_memory()  # this process is the entry point of the build
    maps_dir, model_path = Path(maps_dir), Path(model_path)
    data = load_mnist("embedded")
    print(data.summary(), flush=True)
    if not model_path.is_file():
        config = TrainConfig()
        print(f"==> training the model into {model_path} ({config.epochs} epochs)", flush=True)
        result = train_to_file(data, config, model_path)
        print(f"test accuracy {result.test_accuracy:.2%}", flush=True)
    print(f"==> computing the demo preset's maps into {maps_dir}", flush=True)
    # the manifest records the one command that rebuilds this bundle
    argv = ["precompute", "--model", str(model_path), "--data", "embedded", "--preset",
            "demo", "--out", str(maps_dir)]  # fmt: skip
    precompute(
        model_path=model_path, data=data, out_dir=maps_dir, preset="demo", progress=False,
        argv=argv,
    )  # fmt: skip
