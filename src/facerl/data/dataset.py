"""The dataset reader every stage uses: VOCASET layout in, typed batches at 30 fps out.

Dimensions: B batch, T frames (30 fps), V vertices, S audio samples (16 kHz), C training subjects.
Models work at 30 fps: vertices are read at 60 fps and every 2nd frame is kept (``[::2]``), as
FaceFormer, CodeTalker and SelfTalk do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from facerl.audio import read_wav
from facerl.data.layout import Layout
from facerl.errors import FacerlError
from facerl.speech.timing import Phone, read_phone_csv

SOURCE_FPS = 60
FPS = 30


@dataclass
class DatasetSpec:
    """Where a dataset lives and how it splits (defaults: FaceFormer's VOCASET protocol)."""

    root: str
    train_subjects: list[str]
    val_subjects: list[str]
    test_subjects: list[str]
    train_sentences: tuple[int, int] = (1, 40)   # inclusive range read for training subjects
    eval_sentences: tuple[int, int] = (21, 40)   # inclusive range read for val / test subjects
    stride: int = SOURCE_FPS // FPS              # 60 fps -> 30 fps

    def subjects(self, split: str) -> list[str]:
        return {"train": self.train_subjects, "val": self.val_subjects, "test": self.test_subjects}[split]

    def sentences(self, split: str) -> tuple[int, int]:
        return self.train_sentences if split == "train" else self.eval_sentences


@dataclass
class Clip:
    name: str
    subject: str
    audio: torch.Tensor       # (S,) float32, 16 kHz
    vertices: torch.Tensor    # (T, V*3) float32, 30 fps
    template: torch.Tensor    # (V*3,)
    style: int                # index of the subject among training subjects, -1 if unseen
    phones: list[Phone] | None = None


@dataclass
class Batch:
    names: list[str]
    subjects: list[str]
    audio: torch.Tensor       # (B, S_max)
    audio_mask: torch.Tensor  # (B, S_max) bool, True on real samples
    vertices: torch.Tensor    # (B, T_max, V*3), zero-padded
    frame_mask: torch.Tensor  # (B, T_max) bool, True on real frames
    template: torch.Tensor    # (B, V*3)
    style: torch.Tensor       # (B,) long, -1 for unseen speakers
    phones: list[list[Phone] | None] = field(default_factory=list)

    def to(self, device: torch.device | str) -> Batch:
        tensors = {k: getattr(self, k).to(device) for k in
                   ("audio", "audio_mask", "vertices", "frame_mask", "template", "style")}
        return Batch(self.names, self.subjects, phones=self.phones, **tensors)


class VocaDataset(Dataset):
    """Clips of one split. Reads lazily; validates the layout up front so errors come before training."""

    def __init__(self, spec: DatasetSpec, split: str, with_phones: bool = True) -> None:
        self.spec, self.split, self.with_phones = spec, split, with_phones
        self.layout = Layout(Path(spec.root))
        if not self.layout.root.is_dir():
            raise FacerlError(f"dataset root not found: {self.layout.root}")
        self.templates = self.layout.templates()
        subjects = spec.subjects(split)
        missing = [s for s in subjects if s not in self.templates]
        if missing:
            raise FacerlError(f"subject(s) missing from {self.layout.templates_path}: {', '.join(missing)}")
        lo, hi = spec.sentences(split)
        self.names = []
        for name in self.layout.clips():
            subject, sentence = Layout.parse_clip(name)
            if subject in subjects and lo <= sentence <= hi:
                self._check_vertices(name, subject)
                self.names.append(name)
        if not self.names:
            raise FacerlError(f"no clips for split {split!r} under {self.layout.root} "
                              f"(subjects {subjects}, sentences {lo}-{hi})")
        self.style_index = {s: i for i, s in enumerate(spec.train_subjects)}

    def _check_vertices(self, name: str, subject: str) -> None:
        """Read only the .npy header: the vertex count must match the subject's template."""
        path = self.layout.vertices(name)
        if path.stat().st_size == 0:
            raise FacerlError(f"vertex file is empty: {path}")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise FacerlError(f"cannot read {path} as a .npy array ({exc})") from None
        shape = array.shape
        if array.dtype.kind not in "fiu":
            raise FacerlError(f"{path}: vertices must be numbers, got dtype {array.dtype}")
        per_frame = int(np.prod(shape[1:])) if len(shape) > 1 else 0
        if len(shape) not in (2, 3) or shape[0] == 0 or per_frame != self.templates[subject].size:
            raise FacerlError(f"{path}: shape {shape} does not hold frames of {len(self.templates[subject])} "
                              f"vertices per frame (the template of {subject})")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Clip:
        name = self.names[i]
        subject, _ = Layout.parse_clip(name)
        template = self.templates[subject]  # (V, 3)
        vertices = np.load(self.layout.vertices(name), mmap_mode="r")[:: self.spec.stride]  # (T, V*3)
        vertices = vertices.reshape(len(vertices), -1)  # (T, V, 3) files are accepted too
        if not np.isfinite(vertices).all():
            raise FacerlError(f"{self.layout.vertices(name)}: vertices contain NaN or inf")
        phones_path = self.layout.phones(name)
        phones = read_phone_csv(phones_path) if self.with_phones and phones_path.exists() else None
        return Clip(
            name=name, subject=subject,
            audio=torch.from_numpy(read_wav(self.layout.wav(name))),
            vertices=torch.from_numpy(np.ascontiguousarray(vertices, dtype=np.float32)),
            template=torch.from_numpy(template.reshape(-1)),
            style=self.style_index.get(subject, -1), phones=phones,
        )


def pad_stack(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[(L_i, ...)] -> (B, L_max, ...) zero-padded and a (B, L_max) bool mask."""
    length = max(len(s) for s in seqs)
    out = seqs[0].new_zeros((len(seqs), length, *seqs[0].shape[1:]))
    mask = torch.zeros(len(seqs), length, dtype=torch.bool)
    for b, s in enumerate(seqs):
        out[b, : len(s)] = s
        mask[b, : len(s)] = True
    return out, mask


def collate(clips: list[Clip]) -> Batch:
    audio, audio_mask = pad_stack([c.audio for c in clips])
    vertices, frame_mask = pad_stack([c.vertices for c in clips])
    return Batch(
        names=[c.name for c in clips], subjects=[c.subject for c in clips],
        audio=audio, audio_mask=audio_mask, vertices=vertices, frame_mask=frame_mask,
        template=torch.stack([c.template for c in clips]),
        style=torch.tensor([c.style for c in clips], dtype=torch.long),
        phones=[c.phones for c in clips],
    )


def spec_from_corpus(root: str) -> DatasetSpec:
    """A DatasetSpec for a facerl-built corpus (splits from its corpus.json)."""
    meta_path = Layout(Path(root)).meta_path
    if not meta_path.exists():
        raise FacerlError(f"{meta_path} not found: is {root} a complete facerl corpus? "
                          "(for converted VOCASET use dataset=vocaset)")
    try:
        splits = json.loads(meta_path.read_text())["splits"]
        return DatasetSpec(root=root, train_subjects=list(splits["train"]), val_subjects=list(splits["val"]),
                           test_subjects=list(splits["test"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise FacerlError(f"{meta_path} is damaged ({type(exc).__name__}: {exc}); rebuild the corpus") from None


def spec_from_config(cfg: Any) -> DatasetSpec:
    """A DatasetSpec from the ``dataset`` config group (kind: corpus | vocaset)."""
    if cfg.kind == "corpus":
        return spec_from_corpus(str(cfg.root))
    if cfg.kind == "vocaset":
        return DatasetSpec(root=str(cfg.root), train_subjects=list(cfg.train_subjects),
                           val_subjects=list(cfg.val_subjects), test_subjects=list(cfg.test_subjects),
                           train_sentences=tuple(cfg.train_sentences), eval_sentences=tuple(cfg.eval_sentences))
    raise FacerlError(f"unknown dataset kind {cfg.kind!r} (expected corpus or vocaset)")
