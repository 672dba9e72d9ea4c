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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facerl.errors import FacerlError
from facerl.utils.io import load_npy, save_pickle
from facerl.utils.owned import mark_owned, owned_by, remove_owned

CLIP_RE = re.compile(r"^(?P<subject>.+)_sentence(?P<sentence>\d+)$")
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how protocol-2 pickles store array bytes; harmless
}


# What a dataset root holds at its top level (facerl's layout, VOCASET's mask name): replacing a root
# with anything else in it is refused.
DATASET_ENTRIES = {"wav", "vertices_npy", "phones", "blendshapes", "templates.pkl", "regions.pkl",
                   "FLAME_masks.pkl", "faces.npy", "corpus.json", "voices.json"}


class _SafeUnpickler(pickle.Unpickler):
    """Only numpy arrays and plain containers: a dataset pickle must not run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS or (module == "numpy" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_pickle(path: Path) -> Any:
    """Load a dataset pickle safely (VOCASET's are Python 2 pickles: latin1); any failure is one line."""
    if not path.is_file():
        raise FacerlError(f"file not found: {path}")
    try:
        with open(path, "rb") as fh:
            return _SafeUnpickler(fh, encoding="latin1").load()
    except MemoryError:
        raise FacerlError(f"cannot read {path}: it is damaged (claims more memory than there is)") from None
    except Exception as exc:  # noqa: BLE001 - a damaged pickle raises almost any type from inside its objects
        detail = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FacerlError(f"cannot read {path}: {detail}") from None


def load_faces(path: Path) -> np.ndarray:
    """(F, 3) integer triangle indices from a .npy, or a one-line error naming the file."""
    faces = load_npy(path, "faces")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0 or faces.dtype.kind not in "iu" or faces.min() < 0:
        raise FacerlError(f"{path}: faces must be a non-empty (F, 3) array of vertex indices, "
                          f"got {faces.dtype} {faces.shape}")
    return faces.astype(np.int64)


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

    def prepare(self, created_by: str, overwrite: bool = False) -> None:
        """Create an empty dataset root marked as made by ``created_by``; refuse to clobber an existing one
        unless asked, and even then replace only a dataset facerl made that holds nothing else."""
        if self.root.is_symlink() or (self.root.exists() and any(self.root.iterdir())):
            if not overwrite:
                raise FacerlError(f"{self.root} already exists and is not empty (pass --overwrite to replace it)")
            remove_owned(self.root, DATASET_ENTRIES, legacy_marker=self.meta_path.name)
        for sub in ("wav", "vertices_npy", "phones", "blendshapes"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        mark_owned(self.root, created_by)

    @property
    def created_by(self) -> str | None:
        """The facerl command that made this root (None for VOCASET folders made by hand, or older ones)."""
        return owned_by(self.root)

    def clips(self) -> list[str]:
        """Clip names (<Subject>_sentenceNN) that have both a wav and a vertex file, sorted; other files are ignored."""
        wavs = {p.stem for p in (self.root / "wav").glob("*.wav")}
        return sorted(p.stem for p in (self.root / "vertices_npy").glob("*.npy")
                      if p.stem in wavs and CLIP_RE.match(p.stem))

    def templates(self) -> dict[str, np.ndarray]:
        data = load_pickle(self.templates_path)
        if not isinstance(data, dict):
            raise FacerlError(f"{self.templates_path} must hold a dict {{subject: (V, 3) array}}")
        out = {}
        for subject, value in data.items():
            try:
                template = np.asarray(value, np.float32).reshape(-1, 3)
            except (TypeError, ValueError):
                raise FacerlError(f"{self.templates_path}: the template of {subject!r} is not a (V, 3) array") from None
            if not np.isfinite(template).all():
                raise FacerlError(f"{self.templates_path}: the template of {subject!r} contains NaN or inf")
            out[str(subject)] = template
        return out

    def regions(self) -> dict[str, np.ndarray]:
        data = load_pickle(self.regions_path)
        if not isinstance(data, dict):
            raise FacerlError(f"{self.regions_path} must hold a dict {{region name: vertex indices}}, "
                              f"found a {type(data).__name__}")
        try:
            return {str(k): np.asarray(v).astype(np.int64).reshape(-1) for k, v in data.items()}
        except (TypeError, ValueError) as exc:
            raise FacerlError(f"{self.regions_path}: a region is not a list of vertex indices ({exc})") from None

    def faces(self) -> np.ndarray | None:
        """(F, 3) triangles, or None when the dataset has no faces.npy."""
        return load_faces(self.faces_path) if self.faces_path.exists() else None

    def add_template(self, subject: str, template: np.ndarray) -> None:
        templates = self.templates() if self.templates_path.exists() else {}
        templates[subject] = np.asarray(template, np.float32)
        save_pickle(self.templates_path, templates)
