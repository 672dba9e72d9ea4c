"""Per-speaker articulation style, sampled deterministically from a seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpeakerStyle:
    jaw_gain: float = 1.0         # scales jawOpen (jaw/lip balance together with lip_gain)
    lip_gain: float = 1.0         # scales lip shaping channels (funnel, pucker, stretch, press, roll)
    smile_bias: float = 0.0       # constant smile under speech
    asymmetry: float = 0.0        # >0: left side moves more than right
    lead_s: float = 0.02          # lips lead the audio by this much (visual anticipation)
    anticipation: float = 1.3     # dominance spread before a phone's centre, relative to after
    carryover: float = 1.0        # dominance spread after a phone's centre
    blink_per_min: float = 17.0   # spontaneous blink rate (adults at conversation: ~10-25 / min)
    brow_gain: float = 0.4        # brow raise height on pitch accents
    brow_prob: float = 0.5        # share of accented vowels that get a brow raise
    identity: tuple[float, ...] = ()  # coefficients of the head's identity shape targets


def sample_style(rng: np.random.Generator, n_identity: int) -> SpeakerStyle:
    return SpeakerStyle(
        jaw_gain=float(rng.uniform(0.75, 1.25)),
        lip_gain=float(rng.uniform(0.75, 1.3)),
        smile_bias=float(rng.uniform(0.0, 0.25)),
        asymmetry=float(rng.uniform(-0.2, 0.2)),
        lead_s=float(rng.uniform(0.0, 0.04)),
        anticipation=float(rng.uniform(1.1, 1.6)),
        carryover=float(rng.uniform(0.8, 1.2)),
        blink_per_min=float(rng.uniform(10.0, 24.0)),
        brow_gain=float(rng.uniform(0.2, 0.7)),
        brow_prob=float(rng.uniform(0.3, 0.7)),
        identity=tuple(float(x) for x in rng.uniform(-0.45, 0.45, size=n_identity)),
    )
