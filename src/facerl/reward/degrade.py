"""Degraded motion: the negatives the realism score learns to tell from ground truth.

Each function maps motion offsets (T, P) (metres from the template, 30 fps) to a degraded copy of the
same shape. They are what supervised actors get wrong (over-smoothing, damped amplitude) and what
bad generators do (jitter, frozen frames, timing drift, a coherent shake).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def oversmooth(motion: torch.Tensor, sigma_frames: float = 3.0) -> torch.Tensor:
    """Gaussian low-pass in time (sigma in frames, kernel cut at 4 sigma, edges held): closures and
    openings lose their peaks."""
    radius = max(1, int(4 * sigma_frames + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma_frames) ** 2)
    kernel = (kernel / kernel.sum()).to(motion.dtype)
    t = len(motion)
    rows = torch.arange(t)[:, None].expand(t, 2 * radius + 1)
    cols = (rows + torch.arange(-radius, radius + 1)[None]).clamp(0, t - 1)       # held edges
    smooth = torch.zeros(t, t, dtype=motion.dtype).index_put_((rows, cols), kernel.expand(t, -1), accumulate=True)
    return smooth @ motion                                                          # (T, T) @ (T, P)


def damp(motion: torch.Tensor, factor: float = 0.5) -> torch.Tensor:
    """Amplitude scaled by ``factor`` around the template: a mumbling, under-articulated mouth."""
    return motion * factor


def jitter(motion: torch.Tensor, rng: np.random.Generator, std_m: float = 5e-4) -> torch.Tensor:
    """Independent Gaussian noise per frame and coordinate (std in metres)."""
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    return motion + std_m * torch.randn(motion.shape, generator=gen, dtype=motion.dtype)


def tremble(motion: torch.Tensor, rng: np.random.Generator, rel: float = 0.3, rank: int = 8) -> torch.Tensor:
    """A coherent shake: noise white in time but spread over the face like its own motion, ``rel`` x the
    spread of ``rank`` of its poses (random frames, centred) per coordinate. That is what exploration noise
    in a PCA motion basis looks like, and RL against a reward without this negative drove the actor's
    9-15 Hz motion to 1.2x ground truth; i.i.d. jitter does not resemble it (still vertices stay still)."""
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    t = len(motion)
    frames = torch.randint(t, (rank,), generator=gen)
    poses = (motion[frames] - motion.mean(0)) / math.sqrt(rank)                   # (rank, P)
    return motion + rel * torch.randn(t, rank, generator=gen, dtype=motion.dtype) @ poses


def freeze(motion: torch.Tensor, rng: np.random.Generator, span: int = 4) -> torch.Tensor:
    """Hold frames: every ``span`` frames the motion is sampled and held (a stuttering, low-rate face)."""
    t = len(motion)
    phase = int(rng.integers(span))
    held = np.clip((np.arange(t) + phase) // span * span - phase, 0, t - 1)
    return motion[torch.from_numpy(held)]


def time_warp(motion: torch.Tensor, rng: np.random.Generator, strength: float = 0.25) -> torch.Tensor:
    """Smooth monotone re-timing (speed varying by up to +-strength): motion drifts off the audio."""
    t = len(motion)
    speed = 1.0 + strength * np.sin(2 * np.pi * (np.arange(t) / max(t, 1) * rng.uniform(0.5, 1.5)
                                                   + rng.uniform(0, 1)))
    pos = np.concatenate([[0.0], np.cumsum(speed[:-1])])
    pos = np.clip(pos * (t - 1) / max(pos[-1], 1e-9), 0, t - 1)            # same duration, warped inside
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, t - 1)
    w = torch.from_numpy((pos - lo).astype(np.float32))[:, None].to(motion.dtype)
    return motion[torch.from_numpy(lo)] * (1 - w) + motion[torch.from_numpy(hi)] * w


DEGRADATIONS = ("oversmooth", "damp", "jitter", "freeze", "time_warp", "tremble")


def degrade(motion: torch.Tensor, kind: str, rng: np.random.Generator) -> torch.Tensor:
    """Apply one named degradation with randomised strength."""
    if kind == "oversmooth":
        return oversmooth(motion, rng.uniform(2.0, 4.0))
    if kind == "damp":
        return damp(motion, rng.uniform(0.3, 0.7))
    if kind == "jitter":
        return jitter(motion, rng, rng.uniform(3e-4, 1e-3))
    if kind == "freeze":
        return freeze(motion, rng, int(rng.integers(3, 7)))
    if kind == "time_warp":
        return time_warp(motion, rng, rng.uniform(0.2, 0.4))
    if kind == "tremble":
        return tremble(motion, rng, rng.uniform(0.2, 0.5))
    raise ValueError(f"unknown degradation {kind!r} (expected one of {', '.join(DEGRADATIONS)})")
