"""The per-image stimuli a help study shows, loaded once per process (numpy + json, no
torch): the bundle ``normlime make-stimuli`` wrote, its PNGs kept as they are served:
recompressed and padded to one length (:mod:`study_server.imagebytes`)."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from explainers.item_stimuli import Stimuli, StimuliError, read_stimuli

from . import imagebytes

__all__ = ["StimuliStore", "load_stimuli_store", "default_stimuli_dir", "StimuliError"]


def default_stimuli_dir() -> str | None:
    return os.environ.get("NORMLIME_STIMULI") or None


@dataclass(frozen=True)
class StimuliStore:
    stimuli: Stimuli
    #: file name -> the served bytes, every one ``png_length`` long
    pngs: dict[str, bytes]
    png_length: int
    sha256: str

    def png(self, name: str) -> bytes:
        return self.pngs[name]


def load_stimuli_store(root: str | Path) -> StimuliStore:
    stimuli = read_stimuli(root)
    raw = {name: (stimuli.root / "png" / name).read_bytes() for name in stimuli.manifest["sha256"]}
    try:
        served, length = imagebytes.equalise(raw)
    except (ValueError, zlib.error) as exc:
        raise StimuliError(f"stimuli bundle {root} holds a damaged PNG ({exc})") from None
    import hashlib

    digest = hashlib.sha256("".join(sorted(stimuli.manifest["sha256"].values())).encode())
    return StimuliStore(stimuli, served, length, digest.hexdigest())
