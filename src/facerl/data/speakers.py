"""The 12 synthetic speakers: an eSpeak voice each, named like VOCASET subjects, split 8 / 2 / 2 as FaceFormer."""

from __future__ import annotations

from dataclasses import dataclass

from facerl.speech.espeak import Voice


@dataclass(frozen=True)
class SpeakerSpec:
    subject: str
    voice: Voice
    split: str  # train | val | test


def _subject(i: int, variant: str) -> str:
    return f"SynthTalk_{i + 1:02d}_{variant}_TA"


# variant, words/min, pitch (0-100): male variants m1-m7 and female f1-f5, with their own pace and pitch.
_VOICES = [("m1", 160, 45), ("f1", 170, 55), ("m2", 150, 40), ("f2", 175, 60), ("m3", 165, 50), ("f3", 160, 50),
           ("m4", 175, 35), ("f4", 155, 65), ("m5", 160, 55), ("f5", 170, 45), ("m6", 155, 50), ("m7", 170, 40)]
_SPLITS = ["train"] * 8 + ["val"] * 2 + ["test"] * 2

SPEAKERS: list[SpeakerSpec] = [
    SpeakerSpec(_subject(i, v), Voice(name=f"en-us+{v}", rate=rate, pitch=pitch), split)
    for i, ((v, rate, pitch), split) in enumerate(zip(_VOICES, _SPLITS))
]
# --tiny: 2 train, 1 val, 1 test speakers
TINY_SPEAKERS: list[SpeakerSpec] = [SPEAKERS[0], SPEAKERS[1], SPEAKERS[8], SPEAKERS[10]]

