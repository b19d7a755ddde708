"""A study project's dataset, loaded into the same train/test container MNIST uses.

Every source gives uint8 images (N, C, H, W) with C = 1 (grey) or 3 (RGB) -- 8 bits per
value, as image files store them -- and int64 labels that index the project's class
names.  Kinds (``[dataset] kind = ...`` in study.toml):

``imagefolder``  ``path`` holds one folder per class (torchvision's ImageFolder layout);
                 ``train_path`` optionally a second such folder; ``size = [H, W]`` resizes,
                 ``channels = 1 | 3`` converts.  Folder names must be class names.
``torchvision``  ``name`` of a torchvision dataset class (``CIFAR10``), ``root``,
                 ``download = true`` (needs the network the first time).
``mnist-idx``    ``path`` to MNIST IDX files (``explainers.data``), the 10 digits.
``callable``     ``callable = "module:function"`` returning ``(images, labels)`` or a
                 dict with ``test_images``, ``test_labels`` and optionally ``train_*``;
                 images uint8 or floats in [0, 1], (N, H, W), (N, C, H, W) or (N, H, W, C).

The model's own input normalisation is not the dataset's business: it belongs in
``[model.input]``, so every explainer sees pixels in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import DataError, MnistData, load_mnist

__all__ = ["DATASET_KINDS", "load_dataset", "to_uint8_nchw", "sklearn_digits"]

DATASET_KINDS = ("imagefolder", "torchvision", "mnist-idx", "callable")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}


def to_uint8_nchw(images, what: str = "images") -> np.ndarray:
    """Any of the accepted image layouts -> uint8 (N, C, H, W), C in (1, 3)."""
    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[1] not in (1, 3) and arr.shape[-1] in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)  # channels last
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or arr.shape[0] == 0:
        raise DataError(
            f"{what} have shape {arr.shape}; expected (N, H, W), (N, C, H, W) or (N, H, W, C) "
            "with 1 or 3 channels"
        )
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{what} must be uint8 or floats in [0, 1], got {arr.dtype}")
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if not np.all(np.isfinite(arr)) or lo < -1e-6 or hi > 1 + 1e-6:
        raise DataError(
            f"{what} span [{lo:.3g}, {hi:.3g}]; floats must lie in [0, 1] (put the model's "
            "normalisation in [model.input], not in the dataset)"
        )
    return np.ascontiguousarray(np.rint(np.clip(arr, 0, 1) * 255.0).astype(np.uint8))


def _labels(labels, n: int, class_names, what: str) -> np.ndarray:
    lab = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
    if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer):
        raise DataError(f"{what} must be {n} integer class indices, got {lab.dtype} {lab.shape}")
    bad = lab[(lab < 0) | (lab >= len(class_names))]
    if bad.size:
        raise DataError(
            f"{what} include class {int(bad[0])}, but the project names only "
            f"{len(class_names)} classes (0-{len(class_names) - 1}): add it to [classes] names"
        )
    return lab.astype(np.int64)


def _empty_like(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, *images.shape[1:]), np.uint8), np.zeros(0, np.int64)


def _container(source, description, test, train=None) -> MnistData:
    train = train if train is not None else _empty_like(test[0])
    if train[0].size and train[0].shape[1:] != test[0].shape[1:]:
        raise DataError(f"train images are {train[0].shape[1:]}, test images {test[0].shape[1:]}")
    return MnistData(source, description, train[0], train[1], test[0], test[1])


def _read_folder(root: Path, class_names, size, channels) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DataError(f"{root} has no class folders (expected {root}/<class name>/<image>)")
    unknown = [p.name for p in folders if p.name not in class_names]
    if unknown:
        raise DataError(
            f"{root} has class folder {unknown[0]!r}, which the project's [classes] names "
            f"do not include ({', '.join(class_names)})"
        )
    mode = {1: "L", 3: "RGB"}[int(channels)]
    images, labels = [], []
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(path) as img:
                    img = img.convert(mode)
                    if size is not None:
                        img = img.resize((int(size[1]), int(size[0])), Image.BILINEAR)
                    images.append(np.asarray(img, dtype=np.uint8))
            except OSError as exc:
                raise DataError(f"cannot read image {path}: {exc}") from None
            labels.append(class_names.index(folder.name))
    if not images:
        raise DataError(f"{root} holds no images")
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise DataError(f"images in {root} have different sizes {sorted(shapes)[:3]}: set size")
    stacked = np.stack(images)
    return to_uint8_nchw(stacked, str(root)), np.array(labels, dtype=np.int64)


def _from_imagefolder(spec: dict, base: Path, class_names) -> MnistData:
    size, channels = spec.get("size"), spec.get("channels", 3)
    if channels not in (1, 3):
        raise DataError(f"[dataset] channels must be 1 or 3, got {channels!r}")
    test_root = (base / spec["path"]).resolve()
    test = _read_folder(test_root, class_names, size, channels)
    train = None
    if spec.get("train_path"):
        train = _read_folder((base / spec["train_path"]).resolve(), class_names, size, channels)
    return _container(str(test_root), f"image folder {test_root}", test, train)


def _torchvision_split(cls, root: Path, train: bool, download: bool):
    try:
        ds = cls(str(root), train=train, download=download)
    except TypeError:
        ds = cls(str(root), split="train" if train else "test", download=download)
    data = getattr(ds, "data", None)
    if isinstance(data, np.ndarray) or hasattr(data, "numpy"):
        images = np.asarray(data)
        targets = np.asarray(getattr(ds, "targets", getattr(ds, "labels", None)))
    else:
        pairs = [ds[i] for i in range(len(ds))]
        images = np.stack([np.asarray(p[0]) for p in pairs])
        targets = np.array([int(p[1]) for p in pairs])
    return ds, images, targets


def _from_torchvision(spec: dict, base: Path, class_names) -> MnistData:
    import torchvision.datasets as tvd

    name = spec.get("name")
    cls = getattr(tvd, str(name), None)
    if not isinstance(cls, type):
        raise DataError(f"torchvision.datasets has no dataset {name!r} (e.g. CIFAR10)")
    root = (base / spec.get("root", "data")).expanduser().resolve()
    download = bool(spec.get("download", True))
    try:
        ds, test_images, test_labels = _torchvision_split(cls, root, False, download)
        train = None
        if spec.get("train", False):
            _, tr_images, tr_labels = _torchvision_split(cls, root, True, download)
            train = (to_uint8_nchw(tr_images), tr_labels)
    except (RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot load torchvision {name} into {root}: {first}") from None
    names = list(getattr(ds, "classes", []) or [])
    unknown = [c for c in names if c not in class_names]
    if unknown:
        raise DataError(
            f"torchvision {name} has class {unknown[0]!r}, which the project's [classes] "
            "names do not include"
        )
    remap = np.array([class_names.index(c) for c in names]) if names else None
    test = to_uint8_nchw(test_images, f"{name} images")
    test_lab = remap[test_labels] if remap is not None else test_labels
    if train is not None and remap is not None:
        train = (train[0], remap[train[1]])
    return _container(f"torchvision:{name}", f"torchvision {name} from {root}",
                      (test, _labels(test_lab, len(test), class_names, f"{name} labels")),
                      train)  # fmt: skip


def _from_callable(spec: dict, base: Path, class_names) -> MnistData:
    from .function_method import import_callable

    try:
        fn = import_callable(spec.get("callable"), "[dataset] callable")
    except ValueError as exc:
        raise DataError(str(exc)) from None
    out = fn(**dict(spec.get("args", {})))
    if isinstance(out, dict):
        parts = {k: out.get(k) for k in ("test_images", "test_labels", "train_images",
                                         "train_labels")}  # fmt: skip
    elif isinstance(out, tuple | list) and len(out) in (2, 4):
        keys = ("test_images", "test_labels", "train_images", "train_labels")
        parts = dict(zip(keys, out, strict=False))
    else:
        raise DataError(
            f"{spec.get('callable')} must return (images, labels) or a dict with test_images "
            "and test_labels"
        )
    if parts.get("test_images") is None or parts.get("test_labels") is None:
        raise DataError(f"{spec.get('callable')} returned no test_images/test_labels")

    def split(prefix):
        if parts.get(f"{prefix}_images") is None:
            return None
        images = to_uint8_nchw(parts[f"{prefix}_images"], f"{prefix} images")
        return images, _labels(parts[f"{prefix}_labels"], len(images), class_names,
                               f"{prefix} labels")  # fmt: skip

    return _container(f"callable:{spec.get('callable')}", f"{spec.get('callable')}",
                      split("test"), split("train"))  # fmt: skip


def _from_mnist(spec: dict, base: Path, class_names) -> MnistData:
    if len(class_names) != 10:
        raise DataError(f"MNIST has 10 classes, the project names {len(class_names)}")
    path = spec.get("path", "embedded")
    return load_mnist(path if path in ("embedded", "download") else base / path)


_LOADERS = {
    "imagefolder": _from_imagefolder,
    "torchvision": _from_torchvision,
    "mnist-idx": _from_mnist,
    "callable": _from_callable,
}


def load_dataset(spec: dict, base: str | Path, class_names) -> MnistData:
    """The project's dataset (``spec`` = its [dataset] table; paths relative to ``base``)."""
    kind = spec.get("kind")
    if kind not in _LOADERS:
        raise DataError(f"[dataset] kind must be one of {', '.join(DATASET_KINDS)}, got {kind!r}")
    data = _LOADERS[kind](spec, Path(base), list(class_names))
    absent = sorted(set(range(len(class_names))) - set(np.unique(data.test_labels).tolist()))
    if absent and not data.n_train:
        raise DataError(
            f"the dataset has no images of class {class_names[absent[0]]!r}: every class the "
            "project names needs images"
        )
    return data


def sklearn_digits(test_fraction: float = 0.5, random_state: int = 0) -> dict:
    """scikit-learn's bundled 8x8 digits (1,797 real images, no network), split in two.

    Values 0-16 are scaled to [0, 1]; the split is stratified and seeded.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    tr_x, te_x, tr_y, te_y = train_test_split(
        images, digits.target, test_size=test_fraction, stratify=digits.target,
        random_state=random_state,
    )  # fmt: skip
    return {"train_images": tr_x, "train_labels": tr_y, "test_images": te_x, "test_labels": te_y}
