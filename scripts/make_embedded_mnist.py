"""Build the embedded MNIST subset shipped in explainers/_data/ from the full IDX files.

    python scripts/make_embedded_mnist.py --data ../shared/data/mnist

Draws a class-balanced random subset (seed recorded) of the original train and test
sets, so the embedded default keeps MNIST's own train/test separation.  MNIST is
CC BY-SA 3.0 (LeCun, Cortes, Burges); the JSON sidecar carries the attribution.
"""

from __future__ import annotations

import argparse
import hashlib
import json

import numpy as np

from explainers.data import EMBEDDED_PATH, load_mnist, stratified_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="directory with the full MNIST IDX files")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20200211)
    args = parser.parse_args()

    data = load_mnist(args.data)
    rng = np.random.default_rng(args.seed)
    train_idx = np.sort(stratified_sample(data.train_labels, args.train_per_class, rng))
    test_idx = np.sort(stratified_sample(data.test_labels, args.test_per_class, rng))
    EMBEDDED_PATH.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        EMBEDDED_PATH,
        train_images=data.train_images[train_idx],
        train_labels=data.train_labels[train_idx].astype(np.uint8),
        test_images=data.test_images[test_idx],
        test_labels=data.test_labels[test_idx].astype(np.uint8),
        train_index=train_idx.astype(np.int32),
        test_index=test_idx.astype(np.int32),
    )
    meta = {
        "what": "class-balanced random subset of the original MNIST train and test sets",
        "built_by": "scripts/make_embedded_mnist.py",
        "seed": args.seed,
        "train_per_class": args.train_per_class,
        "test_per_class": args.test_per_class,
        "n_train": int(train_idx.size),
        "n_test": int(test_idx.size),
        "indices": "train_index / test_index arrays in the .npz index the original IDX files",
        "sha256": hashlib.sha256(EMBEDDED_PATH.read_bytes()).hexdigest(),
        "license": "MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, CC BY-SA 3.0",
    }
    EMBEDDED_PATH.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(
        f"wrote {EMBEDDED_PATH} ({EMBEDDED_PATH.stat().st_size:,} bytes): "
        f"{train_idx.size} train + {test_idx.size} test images"
    )


if __name__ == "__main__":
    main()
