"""MNIST loading: IDX directories, the embedded subset, and clear errors for bad paths."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from explainers.data import (
    EMBEDDED_PATH,
    DataError,
    as_float,
    find_idx_dir,
    load_mnist,
    read_idx,
    stratified_sample,
)


def test_embedded_subset_is_real_balanced_mnist(embedded_data):
    assert embedded_data.n_train == 10_000 and embedded_data.n_test == 2_000
    assert embedded_data.train_images.dtype == np.uint8
    assert embedded_data.train_images.shape == (10_000, 28, 28)
    np.testing.assert_array_equal(np.bincount(embedded_data.train_labels), [1000] * 10)
    np.testing.assert_array_equal(np.bincount(embedded_data.test_labels), [200] * 10)
    assert "10,000 train + 2,000 test" in embedded_data.summary()


def test_embedded_subset_matches_the_original_files(full_mnist_path, embedded_data):
    """Every embedded digit is byte-for-byte the original image at its recorded index."""
    full = load_mnist(full_mnist_path)
    with np.load(EMBEDDED_PATH) as z:
        train_idx, test_idx = z["train_index"], z["test_index"]
    np.testing.assert_array_equal(full.train_images[train_idx], embedded_data.train_images)
    np.testing.assert_array_equal(full.test_labels[test_idx], embedded_data.test_labels)


def test_full_mnist_reads_as_torchvision_layout(full_mnist_path):
    data = load_mnist(full_mnist_path)
    assert (data.n_train, data.n_test) == (60_000, 10_000)
    # the published first labels (shared/data/mnist README)
    assert data.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert data.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert data.summary().startswith("data: full MNIST from ")


def _one_per_digit(data, extra: int = 0):
    """The first test image of every digit (plus ``extra`` more): a tiny but valid MNIST."""
    first = [int(np.flatnonzero(data.test_labels == d)[0]) for d in range(10)]
    rest = [i for i in range(len(data.test_labels)) if i not in first][:extra]
    order = np.array(first + rest)
    return data.test_images[order], data.test_labels[order]


def _write_idx_dir(tmp_path, images, labels, gz: bool, test: slice = slice(None)):
    def idx(arr, magic):
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
        return header + arr.astype(np.uint8).tobytes()

    files = {
        "train-images-idx3-ubyte": idx(images, 0x803),
        "train-labels-idx1-ubyte": idx(labels, 0x801),
        "t10k-images-idx3-ubyte": idx(images[test], 0x803),
        "t10k-labels-idx1-ubyte": idx(labels[test], 0x801),
    }
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, blob in files.items():
        if gz:
            (raw / (name + ".gz")).write_bytes(gzip.compress(blob))
        else:
            (raw / name).write_bytes(blob)
    return raw


@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory_round_trip(tmp_path, embedded_data, gz):
    images, labels = _one_per_digit(embedded_data, extra=3)
    raw = _write_idx_dir(tmp_path, images, labels, gz, test=slice(0, 10))
    for spec in (tmp_path, raw):  # the root and the raw folder itself are both accepted
        data = load_mnist(spec)
        np.testing.assert_array_equal(data.train_images, images)
        np.testing.assert_array_equal(data.test_labels, labels[:10])
    assert find_idx_dir(tmp_path) == raw


def test_bad_paths_give_one_readable_line(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "nope")
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        load_mnist(a_file)


def test_corrupt_idx_is_rejected(tmp_path, embedded_data):
    raw = _write_idx_dir(tmp_path, *_one_per_digit(embedded_data), False)
    blob = (raw / "train-images-idx3-ubyte").read_bytes()
    (raw / "train-images-idx3-ubyte").write_bytes(blob[:-10])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_mnist(tmp_path)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x09\x99" + blob[4:])
    with pytest.raises(DataError, match="not an MNIST IDX file"):
        read_idx(raw / "train-images-idx3-ubyte")


def test_a_dataset_missing_a_digit_is_refused(tmp_path, embedded_data):
    images, labels = _one_per_digit(embedded_data, extra=20)
    keep = labels != 7
    _write_idx_dir(tmp_path, images[keep], labels[keep], False)
    with pytest.raises(DataError, match="train labels in .* have no digit 7"):
        load_mnist(tmp_path)


def test_download_verifies_cached_files_offline(tmp_path, full_mnist_path):
    """torchvision's download path: verified offline from a cache holding the .gz files."""
    cache = tmp_path / "cache"
    shutil.copytree(full_mnist_path / "MNIST" / "raw", cache / "MNIST" / "raw")
    for p in (cache / "MNIST" / "raw").iterdir():
        p.chmod(0o644)
    data = load_mnist("download", cache_dir=cache)
    assert data.n_train == 60_000 and data.source == "download"


def test_as_float_and_stratified_sample(embedded_data):
    x = as_float(embedded_data.test_images[:4])
    assert tuple(x.shape) == (4, 1, 28, 28) and float(x.max()) <= 1.0 and float(x.min()) >= 0.0
    idx = stratified_sample(embedded_data.test_labels, 3, random_state=1)
    assert np.bincount(embedded_data.test_labels[idx]).tolist() == [3] * 10
    assert not np.array_equal(idx, stratified_sample(embedded_data.test_labels, 3, random_state=2))
    with pytest.raises(DataError, match="only 200 examples"):
        stratified_sample(embedded_data.test_labels, 201)
