"""Viseme targets: for each canonical phone, ARKit weights at one or two key points (diphthongs glide).

Targets follow phone classes (bilabials close the lips, f/v bring the lower lip to the upper teeth,
rounded vowels funnel/pucker, open vowels open the jaw, spread vowels stretch/smile). The dominance
of a class says how strongly it resists its neighbours (Cohen & Massaro 1993 coarticulation model):
lip-critical consonants dominate; alveolars and velars leave the lips to their neighbours.
"""

from __future__ import annotations

import numpy as np

from facerl.head.arkit import ARKIT_INDEX, N_ARKIT
from facerl.speech.phoneset import PHONE_CLASS

Weights = dict[str, float]


def both(name: str, value: float) -> Weights:
    """A symmetric Left/Right pair."""
    return {f"{name}Left": value, f"{name}Right": value}


REST: Weights = {"jawOpen": 0.02}
BILABIAL: Weights = {"jawOpen": 0.05, "mouthClose": 0.05, **both("mouthPress", 0.35), "mouthRollLower": 0.1}
_V = {
    # open vowels
    "AA": {"jawOpen": 0.65, **both("mouthLowerDown", 0.25)},
    "AE": {"jawOpen": 0.55, **both("mouthStretch", 0.25), **both("mouthLowerDown", 0.2)},
    "AH": {"jawOpen": 0.45, **both("mouthLowerDown", 0.12)},
    # rounded vowels
    "AO": {"jawOpen": 0.50, "mouthFunnel": 0.45},
    "OW": {"jawOpen": 0.36, "mouthFunnel": 0.50, "mouthPucker": 0.2},
    "UW": {"jawOpen": 0.12, "mouthPucker": 0.75, "mouthFunnel": 0.3},
    "UH": {"jawOpen": 0.18, "mouthFunnel": 0.35, "mouthPucker": 0.3},
    # spread vowels
    "IY": {"jawOpen": 0.12, **both("mouthStretch", 0.40), **both("mouthSmile", 0.2)},
    "IH": {"jawOpen": 0.20, **both("mouthStretch", 0.30)},
    "EH": {"jawOpen": 0.36, **both("mouthStretch", 0.25), **both("mouthLowerDown", 0.1)},
    "ER": {"jawOpen": 0.18, "mouthFunnel": 0.35, "mouthPucker": 0.25},
}
_C = {
    "P": BILABIAL, "B": BILABIAL, "M": BILABIAL,
    "F": {"jawOpen": 0.08, "mouthRollLower": 0.6, **both("mouthUpperUp", 0.2), "mouthClose": 0.03},
    "V": {"jawOpen": 0.08, "mouthRollLower": 0.55, **both("mouthUpperUp", 0.2), "mouthClose": 0.03},
    "TH": {"jawOpen": 0.15, "tongueOut": 0.3, **both("mouthStretch", 0.1)},
    "DH": {"jawOpen": 0.14, "tongueOut": 0.25, **both("mouthStretch", 0.1)},
    **{p: {"jawOpen": 0.12, **both("mouthStretch", 0.12)} for p in ("T", "D", "N", "S", "Z", "L")},
    **{p: {"jawOpen": 0.12, "mouthFunnel": 0.5, "mouthPucker": 0.2, **both("mouthUpperUp", 0.1)}
       for p in ("SH", "ZH", "CH", "JH")},
    **{p: {"jawOpen": 0.18, **both("mouthStretch", 0.05)} for p in ("K", "G", "NG")},
    "HH": {"jawOpen": 0.20},
    "R": {"jawOpen": 0.10, "mouthPucker": 0.35, "mouthFunnel": 0.3},
    "W": {"jawOpen": 0.06, "mouthPucker": 0.8, "mouthFunnel": 0.2},
    "Y": {"jawOpen": 0.10, **both("mouthStretch", 0.3), **both("mouthSmile", 0.15)},
    "SIL": REST,
}
DIPHTHONGS = {"AW": ("AA", "UW"), "AY": ("AA", "IY"), "OY": ("AO", "IY"), "EY": ("EH", "IY")}

# (dominance, temporal spread factor): how strongly a phone holds its target against neighbours.
DOMINANCE = {"bilabial": (6.0, 0.9), "labiodental": (4.0, 0.9), "round": (3.0, 1.2), "vowel": (1.5, 1.0),
             "lingual": (0.5, 0.8), "silence": (0.6, 1.6)}
# phone class (facerl.speech.phoneset.PHONE_CLASS) -> dominance group
_GROUP_OF_CLASS = {"bilabial": "bilabial", "labiodental": "labiodental", "silence": "silence",
                   "glide_round": "round", "rhotic": "round", "postalveolar": "round",
                   "open_vowel": "vowel", "rounded_vowel": "vowel", "spread_vowel": "vowel", "rhotic_vowel": "vowel"}


def vector(weights: Weights) -> np.ndarray:
    out = np.zeros(N_ARKIT, np.float32)
    for name, value in weights.items():
        out[ARKIT_INDEX[name]] = value
    return out


def keyframes(phone: str) -> list[tuple[float, np.ndarray]]:
    """[(position within the phone in [0, 1], ARKit target (52,))]; two keys for diphthongs."""
    if phone in DIPHTHONGS:
        first, second = DIPHTHONGS[phone]
        return [(0.3, vector(_V[first])), (0.85, vector(_V[second]))]
    weights = _V.get(phone) or _C.get(phone)
    if weights is None:
        raise KeyError(f"no viseme target for phone {phone!r}")
    return [(0.5, vector(weights))]


def dominance(phone: str) -> tuple[float, float]:
    return DOMINANCE[_GROUP_OF_CLASS.get(PHONE_CLASS[phone], "lingual")]


def is_bilabial(phone: str) -> bool:
    return PHONE_CLASS.get(phone) == "bilabial"
