"""Class-level maps from a per-input explainer: the NormLIME paper's aggregation.

"The class-level interpretation is computed as the average of the saliency maps for 10
images randomly sampled from the target class" (paper, SmoothGrad and VarGrad).  The same
aggregation is used for every per-image baseline (Input x Gradient, KernelSHAP, Random,
Zhang & Gao's STD map), so their class maps are comparable.

The images of class c are chosen among those whose *given* label is c (pass the true
labels), ``per_class`` of them without replacement, by a numpy generator seeded with
``random_state``; every map is computed with target = c.  The chosen indices are returned
on request so that a manifest can record exactly which images each class map averages.
"""

from __future__ import annotations

import numpy as np
import torch

from .sampling import SamplingError, per_class_sample

__all__ = ["select_class_images", "mean_class_maps"]


def select_class_images(
    labels, per_class: int = 10, n_classes: int | None = None, random_state=None
) -> np.ndarray:
    """(n_classes, per_class) indices: ``per_class`` random images of each class.

    Classes are 0 .. n_classes-1 (default: max label + 1).  Each row is drawn without
    replacement from the images of that class, in class order, from one
    ``np.random.default_rng(random_state)``.
    """
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if int(per_class) < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    n_classes = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    try:
        return per_class_sample(labels, per_class, random_state, classes=range(n_classes))
    except SamplingError as exc:
        raise ValueError(
            f"class {exc.label} has {exc.available} images, {per_class} requested"
        ) from None


def mean_class_maps(
    explainer,
    images,
    labels,
    per_class: int = 10,
    random_state=None,
    n_classes: int | None = None,
    indices: np.ndarray | None = None,
    return_indices: bool = False,
):
    """For each class c, the mean of ``explainer``'s maps over ``per_class`` images of c.

    Parameters
    ----------
    explainer : object with ``attribute(inputs, target)``
        Any per-input explainer (``explainers.base.Explainer``).
    images : tensor or array (N, *shape)
        Inputs as the explainer's forward_func expects them (float; any device).
    labels : array (N,)
        True labels; the images of class c are drawn among those labelled c.
    per_class : int, default 10
        Images per class (the paper's 10).
    random_state : int or None
        Seed of the image selection (the explainer has its own ``random_state``).
    n_classes : int, optional
        Number of classes (default: max label + 1).
    indices : array (n_classes, per_class), optional
        Use these images instead of drawing them (e.g. to reproduce a manifest).
    return_indices : bool, default False
        Also return the (n_classes, per_class) indices used.

    Returns
    -------
    numpy float32 array (n_classes, *shape), and the indices if ``return_indices``.
    """
    images = torch.as_tensor(images)
    if indices is None:
        indices = select_class_images(labels, per_class, n_classes, random_state)
    else:
        indices = np.asarray(indices)
        if indices.ndim != 2:
            raise ValueError(f"indices must be (n_classes, per_class), got {indices.shape}")
        labels_np = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
        for c, row in enumerate(indices):
            if np.any(labels_np[row] != c):
                raise ValueError(f"indices of class {c} include images of another class")
    maps = []
    for c, row in enumerate(indices):
        batch = images[torch.as_tensor(row, dtype=torch.long, device=images.device)]
        target = torch.full((len(row),), c, dtype=torch.long, device=images.device)
        attributions = explainer.attribute(batch, target)
        maps.append(attributions.detach().to(torch.float64).mean(0).cpu().numpy())
    out = np.stack(maps).astype(np.float32)
    return (out, indices) if return_indices else out
