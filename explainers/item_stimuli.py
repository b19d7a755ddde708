"""Per-image stimuli for the designs that measure whether an explanation helps.

``normlime make-stimuli --project DIR --out DIR`` writes a bundle of test images, each
with the model's prediction, its top classes, the true label and every method's
explanation of the image for each of those classes, rendered by the project's rule:

* ``stimuli.json``: the items (id, split, label, prediction, top classes, whether the
  model is right, file names), the methods, the rule that chose the items, the seed;
* ``png/<item>-image.png``: the image alone (the no-explanation condition), and
  ``png/<item>-<method>-<class>.png``: the method's map for that class, drawn over the
  image (the bundle's overlay rule).  Every PNG of one shape has one length (stored, not
  compressed), like the class maps; the server recompresses and pads them to one length.

Stated rules:

* **Items** come from the test images.  Half of them are images the model gets wrong,
  half images it gets right (a 99%-accurate model's errors must be sought out, or "predict
  the true label" would score as well as understanding the model); within each half the
  images are taken class by class in a seeded order.  If the model makes fewer errors
  than half the items ask for, all of them are taken and the bundle says so.
* **Splits.** Items are dealt into a learning pool and a test pool, each balanced the same
  way; the two pools share no image, so what a participant learns from never appears among
  the items they are tested on.
* **Explanations** explain the class they are drawn for: per-image methods explain that
  image for that class; aggregated methods (NormLIME, SP-LIME) have no per-image map and
  show their class map of that class (what the preference study shows), from the
  project's maps bundle.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bundle import BundleError, read_bundle, render_png, render_rule

__all__ = [
    "STIMULI_FORMAT",
    "StimuliError",
    "choose_items",
    "make_stimuli",
    "read_stimuli",
    "Stimuli",
    "TOP_K",
    "image_png",
]

STIMULI_FORMAT = "normlime-stimuli"
TOP_K = 4  # distinction shows the model's top four classes (HIVE)
ITEM_RULE = (
    "test images; half the model gets wrong, half it gets right, each half taken class by "
    "class in a seeded order; dealt into a learning pool and a test pool that share no image"
)


class StimuliError(BundleError):
    """A stimuli bundle that cannot be made or read (one readable line)."""


def choose_items(labels, pred, n_learn: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    """Indices of the learning and the test items by :data:`ITEM_RULE`."""
    labels, pred = np.asarray(labels), np.asarray(pred)
    rng = np.random.default_rng([seed, 0x5717])
    total = n_learn + n_test
    wrong = _class_by_class(np.flatnonzero(pred != labels), labels, rng)
    right = _class_by_class(np.flatnonzero(pred == labels), labels, rng)
    n_wrong = min(total // 2, len(wrong))
    if len(right) < total - n_wrong:
        raise StimuliError(
            f"{total} items need {total - n_wrong} correctly classified test images; the "
            f"model has {len(right)}"
        )
    wrong, right = wrong[:n_wrong], right[: total - n_wrong]
    # deal each half into the two pools in proportion, so both are balanced the same way
    learn_w = round(n_wrong * n_learn / total)
    learn = np.concatenate([wrong[:learn_w], right[: n_learn - learn_w]])
    test = np.concatenate([wrong[learn_w:], right[n_learn - learn_w :]])
    return {"learn": rng.permutation(learn), "test": rng.permutation(test)}


def _class_by_class(rows: np.ndarray, labels: np.ndarray, rng) -> np.ndarray:
    """``rows`` reordered: one of each class in turn, each class's in a seeded order."""
    queues = [rng.permutation(rows[labels[rows] == c]) for c in np.unique(labels[rows])]
    out, depth = [], 0
    while len(out) < len(rows):
        out += [int(q[depth]) for q in queues if depth < len(q)]
        depth += 1
    return np.asarray(out, dtype=np.int64)


def image_png(image: np.ndarray, rule: dict) -> bytes:
    """The image alone, as the overlay rule draws it (grey, same scale, RGB, stored)."""
    from PIL import Image

    from .bundle import _greyscale

    grey = _greyscale(image, np.asarray(image).shape[-2:])
    scale = int(rule["scale"])
    rgb = np.repeat((np.rint(grey * 255.0).astype(np.uint8))[..., None], 3, axis=2)
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="PNG", optimize=False, compress_level=0)
    return buf.getvalue()


@dataclass(frozen=True)
class Stimuli:
    root: Path
    manifest: dict

    @property
    def items(self) -> list[dict]:
        return self.manifest["items"]

    @property
    def methods(self) -> list[str]:
        return self.manifest["methods"]

    @property
    def class_names(self) -> list[str]:
        return self.manifest["classes"]

    def item(self, item_id: str) -> dict:
        return self._by_id()[item_id]

    def _by_id(self) -> dict:
        return {it["id"]: it for it in self.items}

    def split(self, name: str) -> list[dict]:
        return [it for it in self.items if it["split"] == name]

    def png_path(self, item: dict, method: str | None, class_index: int | None = None) -> Path:
        name = item["image"] if method is None else item["maps"][method][str(class_index)]
        return self.root / "png" / name


def read_stimuli(root: str | Path) -> Stimuli:
    """Read and check a stimuli bundle (every listed PNG present with its recorded hash)."""
    root = Path(root)
    path = root / "stimuli.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise StimuliError(f"{root} is not a stimuli bundle (no stimuli.json)") from None
    except (OSError, ValueError) as exc:
        raise StimuliError(f"{path} cannot be read ({exc})") from None
    if manifest.get("format") != STIMULI_FORMAT:
        raise StimuliError(f"{path} is not a {STIMULI_FORMAT} manifest")
    for name, digest in manifest["sha256"].items():
        file = root / "png" / name
        if not file.is_file():
            raise StimuliError(f"stimuli bundle {root} lacks png/{name}")
        if hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            raise StimuliError(f"stimuli bundle {root}: png/{name} does not match its hash")
    return Stimuli(root, manifest)


def make_stimuli(
    project,
    out_dir: str | Path,
    *,
    n_learn: int = 10,
    n_test: int = 20,
    seed: int | None = None,
    device: str | None = None,
    maps_dir: str | Path | None = None,
    data=None,
    log=print,
) -> Stimuli:
    """Write the stimuli bundle of ``project`` (see the module's rules) into ``out_dir``."""
    import torch

    from .data import as_float
    from .precompute import explainer_factory, method_seed, project_settings, reduce_channels
    from .project_precompute import _load

    started = time.perf_counter()
    seed = project.seed if seed is None else int(seed)
    data, dev, model, model_sha = _load(project, device, data=data)
    x_all = as_float(data.test_images)
    with torch.no_grad():
        probs = torch.cat([model(x_all[i : i + 512].to(dev)).cpu()
                           for i in range(0, len(x_all), 512)])  # fmt: skip
    pred = probs.argmax(1).numpy()
    labels = np.asarray(data.test_labels)
    chosen = choose_items(labels, pred, n_learn, n_test, seed)
    rows = np.concatenate([chosen["learn"], chosen["test"]])
    x = x_all[rows].to(dev)
    top = torch.topk(probs[rows], min(TOP_K, probs.shape[1]), dim=1).indices.numpy()
    shape = tuple(x.shape[-2:])
    rule = render_rule(shape, "overlay")
    class_maps = _class_maps(project, maps_dir)
    per_image = project_settings(project).per_image
    files: dict[str, bytes] = {}
    items = []
    for k, row in enumerate(rows):
        item_id = f"t{int(row):05d}"
        image = x[k].cpu().numpy()
        files[f"{item_id}-image.png"] = image_png(image, rule)
        items.append({
            "id": item_id, "split": "learn" if k < n_learn else "test", "test_index": int(row),
            "label": int(labels[row]), "prediction": int(pred[row]),
            "model_correct": bool(pred[row] == labels[row]),
            "top": [int(c) for c in top[k]], "image": f"{item_id}-image.png", "maps": {},
        })  # fmt: skip
    for method in project.methods:
        log(f"stimuli: {method.name}")
        for j in range(top.shape[1]):  # the j-th most probable class of every item
            target = top[:, j]
            if method.aggregated:
                if class_maps is None or method.name not in class_maps:
                    raise StimuliError(
                        f"method {method.name!r} is aggregated: its class maps come from the "
                        "project's maps bundle; run `normlime precompute --project` first"
                    )
                maps = class_maps[method.name][target]
            else:
                make = explainer_factory(method.kind, method.params, per_image)
                explainer = make(model, method_seed(seed, method.name, method.kind,
                                                    method.params))  # fmt: skip
                out = explainer.attribute(x, torch.as_tensor(target, device=dev))
                maps = reduce_channels(out.detach().cpu().numpy())
            for k, item in enumerate(items):
                name = f"{item['id']}-{method.name}-{int(target[k])}.png"
                files[name] = render_png(maps[k], rule, image=x[k].cpu().numpy())
                item["maps"].setdefault(method.name, {})[str(int(target[k]))] = name
    out = Path(out_dir)
    (out / "png").mkdir(parents=True, exist_ok=True)
    for name, data_bytes in files.items():
        (out / "png" / name).write_bytes(data_bytes)
    n_wrong = sum(not it["model_correct"] for it in items)
    manifest = {
        "format": STIMULI_FORMAT,
        "version": 1,
        "project": project.name,
        "classes": list(project.class_names),
        "methods": [m.name for m in project.methods],
        "model_sha256": model_sha,
        "seed": seed,
        "item_rule": ITEM_RULE,
        "explanation_rule": "per-image methods: the image's own map for each class shown; "
        "aggregated methods (NormLIME, SP-LIME): their class map of that class",
        "render": rule,
        "counts": {"learn": n_learn, "test": n_test, "model_wrong": n_wrong,
                   "model_right": len(items) - n_wrong},  # fmt: skip
        "items": items,
        "sha256": {n: hashlib.sha256(b).hexdigest() for n, b in sorted(files.items())},
        "wall_time_s": round(time.perf_counter() - started, 2),
    }
    (out / "stimuli.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"stimuli: {len(items)} items ({n_wrong} the model gets wrong), "
        f"{len(project.methods)} methods, {len(files)} PNGs in {out}")  # fmt: skip
    return Stimuli(out, manifest)


def _class_maps(project, maps_dir) -> dict | None:
    where = Path(maps_dir) if maps_dir else project.maps_dir
    try:
        bundle = read_bundle(where)
    except BundleError:
        if project.builtin and project.name == "mnist" and maps_dir is None:
            from .shipped import shipped_maps

            return read_bundle(shipped_maps()).maps
        return None
    return bundle.maps


def inspect_stimuli(root: str | Path) -> dict:
    """``inspect-maps`` on a stimuli bundle: counts, the balance the item rule promises,
    the disjoint pools, and byte lengths (one per kind of picture, or a flag)."""
    stimuli = read_stimuli(root)
    lengths: dict[str, set[int]] = {"image": set(), "map": set()}
    for name in stimuli.manifest["sha256"]:
        kind = "image" if name.endswith("-image.png") else "map"
        lengths[kind].add((stimuli.root / "png" / name).stat().st_size)
    learn = {it["test_index"] for it in stimuli.split("learn")}
    test = {it["test_index"] for it in stimuli.split("test")}
    flags = []
    if learn & test:
        flags.append(f"{len(learn & test)} images are in both the learning and the test pool")
    for kind, found in lengths.items():
        if len(found) > 1:
            flags.append(f"{kind} PNGs differ in length ({sorted(found)} bytes)")
    counts = {split: {"items": len(stimuli.split(split)),
                      "model_wrong": sum(not it["model_correct"] for it in stimuli.split(split))}
              for split in ("learn", "test")}  # fmt: skip
    return {
        "kind": "stimuli",
        "root": str(stimuli.root),
        "methods": stimuli.methods,
        "counts": counts,
        "png_bytes": {k: sorted(v) for k, v in lengths.items()},
        "flags": flags,
    }


def format_inspection(report: dict) -> str:
    lines = [f"stimuli bundle {report['root']}: methods {', '.join(report['methods'])}"]
    for split, c in report["counts"].items():
        lines.append(f"  {split}: {c['items']} items, {c['model_wrong']} the model gets wrong")
    lines.append(f"  PNG bytes: images {report['png_bytes']['image']}, "
                 f"maps {report['png_bytes']['map']}")  # fmt: skip
    lines.append("  flags: " + ("; ".join(report["flags"]) or "none"))
    return "\n".join(lines)
