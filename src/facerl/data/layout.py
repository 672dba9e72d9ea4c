"""The VOCASET directory layout, as FaceFormer-family loaders read it, plus facerl's extras.

    <root>/wav/<Subject>_sentenceNN.wav          16 kHz mono PCM
    <root>/vertices_npy/<Subject>_sentenceNN.npy float32 (T60, V*3), 60 fps, metres
    <root>/templates.pkl                         {subject: (V, 3)}
    <root>/regions.pkl (or FLAME_masks.pkl)      {"lips": idx, "forehead": idx, "eye_region": idx, "face": idx, ...}
    <root>/phones/<clip>.csv                     start_s,end_s,phone   (synthetic / external speech only)
    <root>/blendshapes/<clip>.npy                (T60, 52) ARKit weights (synthetic only)
    <root>/faces.npy                             (F, 3) triangles, for rendering (optional)
"""

from __future__ import annotations

import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facerl.errors import FacerlError
from facerl.utils.io import save_pickle

CLIP_RE = re.compile(r"^(?P<subject>.+)_sentence(?P<sentence>\d+)$")
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how protocol-2 pickles store array bytes; harmless
}


class _SafeUnpickler(pickle.Unpickler):
    """Only numpy arrays and plain containers: a dataset pickle must not run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS or (module == "numpy" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_pickle(path: Path) -> Any:
    """Load a dataset pickle safely (VOCASET's are Python 2 pickles: latin1)."""
    if not path.is_file():
        raise FacerlError(f"file not found: {path}")
    try:
        with open(path, "rb") as fh:
            return _SafeUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError) as exc:
        raise FacerlError(f"cannot read {path}: {exc}") from None


@dataclass(frozen=True)
class Layout:
    root: Path

    @staticmethod
    def clip_name(subject: str, sentence: int) -> str:
        return f"{subject}_sentence{sentence:02d}"

    @staticmethod
    def parse_clip(name: str) -> tuple[str, int]:
        m = CLIP_RE.match(name)
        if not m:
            raise FacerlError(f"clip name {name!r} is not <Subject>_sentenceNN")
        return m["subject"], int(m["sentence"])

    def wav(self, clip: str) -> Path:
        return self.root / "wav" / f"{clip}.wav"

    def vertices(self, clip: str) -> Path:
        return self.root / "vertices_npy" / f"{clip}.npy"

    def phones(self, clip: str) -> Path:
        return self.root / "phones" / f"{clip}.csv"

    def blendshapes(self, clip: str) -> Path:
        return self.root / "blendshapes" / f"{clip}.npy"

    @property
    def templates_path(self) -> Path:
        return self.root / "templates.pkl"

    @property
    def regions_path(self) -> Path:
        for name in ("regions.pkl", "FLAME_masks.pkl"):
            if (self.root / name).exists():
                return self.root / name
        return self.root / "regions.pkl"

    @property
    def faces_path(self) -> Path:
        return self.root / "faces.npy"

    @property
    def meta_path(self) -> Path:
        return self.root / "corpus.json"

    def prepare(self, overwrite: bool = False) -> None:
        """Create an empty dataset root; refuse to clobber an existing one unless asked."""
        if self.root.exists() and any(self.root.iterdir()):
            if not overwrite:
                raise FacerlError(f"{self.root} already exists and is not empty (pass --overwrite to replace it)")
            if not (self.meta_path.exists() or (self.root / "vertices_npy").exists()):
                raise FacerlError(f"{self.root} does not look like a facerl dataset; refusing to delete it")
            shutil.rmtree(self.root)
        for sub in ("wav", "vertices_npy", "phones", "blendshapes"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def clips(self) -> list[str]:
        """Clip names (<Subject>_sentenceNN) that have both a wav and a vertex file, sorted; other files are ignored."""
        wavs = {p.stem for p in (self.root / "wav").glob("*.wav")}
        return sorted(p.stem for p in (self.root / "vertices_npy").glob("*.npy")
                      if p.stem in wavs and CLIP_RE.match(p.stem))

    def templates(self) -> dict[str, np.ndarray]:
        data = load_pickle(self.templates_path)
        if not isinstance(data, dict):
            raise FacerlError(f"{self.templates_path} must hold a dict {{subject: (V, 3) array}}")
        return {k: np.asarray(v, np.float32).reshape(-1, 3) for k, v in data.items()}

    def regions(self) -> dict[str, np.ndarray]:
        data = load_pickle(self.regions_path)
        return {k: np.asarray(v).astype(np.int64) for k, v in data.items()}

    def faces(self) -> np.ndarray | None:
        return np.load(self.faces_path) if self.faces_path.exists() else None

    def add_template(self, subject: str, template: np.ndarray) -> None:
        templates = self.templates() if self.templates_path.exists() else {}
        templates[subject] = np.asarray(template, np.float32)
        save_pickle(self.templates_path, templates)
