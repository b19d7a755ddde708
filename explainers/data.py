"""MNIST loading: an IDX directory, torchvision's download, or the embedded subset.

Every loader returns the same :class:`MnistData`: uint8 images of shape (N, 28, 28) and
int64 labels, split into the original train and test sets.  ``as_float`` turns images into
the float32 (N, 1, 28, 28) tensors in [0, 1] that the model expects.

The data *spec* accepted everywhere (``--data``) is one of:

``embedded``
    the subset of real MNIST digits shipped inside the package (no network, no files);
``download``
    torchvision's ``MNIST(download=True)`` into a cache directory (needs the network
    unless the cache already holds the files);
a path
    a directory holding the four IDX files, either directly or under ``MNIST/raw/`` (the
    layout torchvision's ``MNIST`` class reads), gzipped or not.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .sampling import SamplingError, per_class_sample

__all__ = [
    "DataError",
    "MnistData",
    "EMBEDDED_PATH",
    "IDX_FILES",
    "as_float",
    "default_cache_dir",
    "find_idx_dir",
    "load_mnist",
    "read_idx",
    "stratified_sample",
    "IMAGE_POOLS",
    "ImagePool",
    "image_digests",
    "image_pool",
]

EMBEDDED_PATH = Path(__file__).parent / "_data" / "mnist-embedded.npz"

#: file stems as distributed by LeCun et al. and as torchvision names them
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_IMAGE_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABEL_MAGIC = 0x00000801  # unsigned byte, 1 dimension


class DataError(ValueError):
    """The data spec does not point at usable MNIST data (message is one readable line)."""


@dataclass(frozen=True)
class MnistData:
    """MNIST split into train and test, as uint8 images and int64 labels."""

    source: str
    description: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    @property
    def n_train(self) -> int:
        return int(self.train_labels.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.test_labels.shape[0])

    def summary(self) -> str:
        """One line naming the data and its size, printed by every command."""
        return f"data: {self.description} ({self.n_train:,} train + {self.n_test:,} test images)"

    def provenance(self) -> dict:
        """What a results sidecar records about the data."""
        return {
            "source": self.source,
            "description": self.description,
            "n_train": self.n_train,
            "n_test": self.n_test,
        }


#: where class-level maps draw their images from: the test set, or train + test (a class
#: map describes the model's notion of a digit, not a prediction on unseen data)
IMAGE_POOLS = ("test", "all")


@dataclass(frozen=True)
class ImagePool:
    """The images a class map may draw from, with their origin recorded.

    ``split[i]`` is 0 for a training and 1 for a test image, ``index[i]`` its position in
    that split of ``data``; ``digest[i]`` identifies the pixels whatever the source (the
    embedded subset holds copies of MNIST images), so two runs can be made disjoint.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    index: np.ndarray
    digest: np.ndarray

    def describe(self) -> str:
        return {"all": "train + test images", "train": "training images"}.get(
            self.name, "test images"
        )


def image_digests(images: np.ndarray) -> np.ndarray:
    """A 64-bit content digest of every uint8 image (blake2b of its bytes)."""
    import hashlib

    arr = np.ascontiguousarray(images)
    flat = arr.reshape(arr.shape[0], -1)
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little")
            for row in flat
        ],
        dtype=np.uint64,
    )


def image_pool(data: MnistData, name: str = "all") -> ImagePool:
    """The pool ``name`` (one of IMAGE_POOLS, or "train": the training split, where a
    data neighbourhood draws from) of ``data``."""
    if name not in (*IMAGE_POOLS, "train"):
        raise DataError(f"unknown image pool {name!r}; choose from {', '.join(IMAGE_POOLS)}")
    train = [("train", 0, data.train_images, data.train_labels)]
    test = [("test", 1, data.test_images, data.test_labels)]
    parts = {"all": train + test, "train": train, "test": test}[name]
    images = np.concatenate([p[2] for p in parts])
    return ImagePool(
        name=name,
        images=images,
        labels=np.concatenate([p[3] for p in parts]).astype(np.int64),
        split=np.concatenate([np.full(len(p[3]), p[1], np.int8) for p in parts]),
        index=np.concatenate([np.arange(len(p[3]), dtype=np.int64) for p in parts]),
        digest=image_digests(images),
    )


def as_float(images: np.ndarray):
    """uint8 (N, H, W) or (N, C, H, W) -> float32 torch tensor (N, C, H, W) in [0, 1].

    MNIST's (N, 28, 28) becomes (N, 1, 28, 28); one (28, 28) image becomes (1, 1, 28, 28).
    """
    import torch

    arr = np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.dtype != np.uint8:
        raise DataError(
            f"expected uint8 images of shape (N, H, W) or (N, C, H, W), got {arr.dtype} {arr.shape}"
        )
    return torch.from_numpy(arr.astype(np.float32) / 255.0)


def stratified_sample(
    labels: np.ndarray, per_class: int, random_state: int | np.random.Generator = 0
) -> np.ndarray:
    """Indices of ``per_class`` random examples of each class, sorted by class then draw.

    Raises :class:`DataError` if some class has fewer than ``per_class`` examples.
    """
    labels = np.asarray(labels)
    try:
        rows = per_class_sample(labels, per_class, random_state, classes=np.unique(labels))
    except SamplingError as exc:
        raise DataError(
            f"class {exc.label} has only {exc.available} examples, {per_class} requested"
        ) from None
    return rows.reshape(-1)


# --------------------------------------------------------------------------- IDX reading


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a numpy array, checking its header."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 8:
        raise DataError(f"{path} is too short to be an IDX file")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (_IMAGE_MAGIC, _LABEL_MAGIC):
        raise DataError(f"{path} is not an MNIST IDX file (magic number {magic:#010x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DataError(
            f"{path} is truncated or corrupt: header says {expected} bytes, "
            f"file holds {len(raw) - offset}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _idx_file(directory: Path, stem: str) -> Path | None:
    # torchvision unpacks next to the .gz; LeCun's mirror names use a dot before "idx"
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def find_idx_dir(path: str | Path) -> Path:
    """The directory holding the four IDX files: ``path`` itself or ``path/MNIST/raw``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"data path {path} does not exist")
    if not path.is_dir():
        raise DataError(f"data path {path} is not a directory holding the MNIST IDX files")
    for candidate in (path, path / "MNIST" / "raw", path / "raw"):
        if candidate.is_dir() and all(_idx_file(candidate, s) for s in IDX_FILES.values()):
            return candidate
    missing = [s for s in IDX_FILES.values() if not _idx_file(path, s)]
    raise DataError(
        f"no MNIST IDX files in {path} (nor in {path}/MNIST/raw): missing {', '.join(missing)}"
    )


def _load_idx_dir(path: str | Path) -> MnistData:
    directory = find_idx_dir(path).resolve()
    arrays = {key: read_idx(_idx_file(directory, stem)) for key, stem in IDX_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(
                f"{split} images in {directory} have shape {images.shape}, not (N, 28, 28)"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise DataError(
                f"{split} labels in {directory} do not match the {images.shape[0]} images"
            )
        if labels.max(initial=0) > 9:
            raise DataError(f"{split} labels in {directory} are not digits 0-9")
        absent = sorted(set(range(10)) - set(np.unique(labels).tolist()))
        if absent:
            raise DataError(
                f"{split} labels in {directory} have no digit {', '.join(map(str, absent))}: "
                "every digit needs images (class maps, the survey and the benchmarks are per digit)"
            )
    full = arrays["train_labels"].shape[0] == 60000 and arrays["test_labels"].shape[0] == 10000
    return MnistData(
        source=str(Path(path).expanduser().resolve()),
        description=f"{'full ' if full else ''}MNIST from {directory}",
        train_images=np.ascontiguousarray(arrays["train_images"]),
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=np.ascontiguousarray(arrays["test_images"]),
        test_labels=arrays["test_labels"].astype(np.int64),
    )


# --------------------------------------------------------------------------- other sources


def _load_embedded() -> MnistData:
    if not EMBEDDED_PATH.is_file():
        raise DataError(f"the embedded MNIST subset is missing from the package ({EMBEDDED_PATH})")
    with np.load(EMBEDDED_PATH) as z:
        return MnistData(
            source="embedded",
            description="embedded MNIST subset shipped with normlime-study",
            train_images=z["train_images"],
            train_labels=z["train_labels"].astype(np.int64),
            test_images=z["test_images"],
            test_labels=z["test_labels"].astype(np.int64),
        )


def default_cache_dir() -> Path:
    """Where ``download`` stores MNIST: ``$NORMLIME_CACHE`` or ``~/.cache/normlime``."""
    base = os.environ.get("NORMLIME_CACHE") or Path.home() / ".cache" / "normlime"
    return Path(base) / "mnist"


def _download(cache_dir: Path | None) -> MnistData:
    from torchvision.datasets import MNIST

    root = Path(cache_dir) if cache_dir else default_cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            MNIST(str(root), train=train, download=True)
    except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError offline
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"could not download MNIST into {root} ({reason}); "
            "pass --data PATH to a directory with the IDX files instead"
        ) from None
    data = _load_idx_dir(root)
    return MnistData(
        source="download",
        description=f"full MNIST downloaded by torchvision into {root}",
        train_images=data.train_images,
        train_labels=data.train_labels,
        test_images=data.test_images,
        test_labels=data.test_labels,
    )


def load_mnist(spec: str | Path = "embedded", *, cache_dir: str | Path | None = None) -> MnistData:
    """Load MNIST from ``spec`` (``embedded``, ``download`` or a directory path)."""
    if spec is None or str(spec) == "embedded":
        return _load_embedded()
    if str(spec) == "download":
        return _download(Path(cache_dir) if cache_dir else None)
    return _load_idx_dir(spec)
