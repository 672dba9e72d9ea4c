"""The 12 synthetic subjects (a face identity + a speaking style each), named like VOCASET subjects and
split 8 / 2 / 2 as FaceFormer. Voices are not tied to subjects: see :mod:`facerl.data.voice_bank`.

The ``m1``/``f1`` tag in each name is historic (the eSpeak variant the subject used to speak with, kept so
that existing corpora, checkpoints and style names stay valid); it no longer says anything about the voice.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpeakerSpec:
    subject: str
    split: str  # train | val | test


_TAGS = ["m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "m7"]
_SPLITS = ["train"] * 8 + ["val"] * 2 + ["test"] * 2

SPEAKERS: list[SpeakerSpec] = [SpeakerSpec(f"SynthTalk_{i + 1:02d}_{tag}_TA", split)
                               for i, (tag, split) in enumerate(zip(_TAGS, _SPLITS))]
# --tiny: 2 train, 1 val, 1 test speakers
TINY_SPEAKERS: list[SpeakerSpec] = [SPEAKERS[0], SPEAKERS[1], SPEAKERS[8], SPEAKERS[10]]
