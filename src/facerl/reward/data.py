"""Training windows for the reward model, sampled from clips prepared once.

Dimensions: T frames (30 fps), P = V*3 coordinates, N sampled windows, L window length (5),
K hard negatives per window, F*L mel frames per window (20), M mel bins (128).

:func:`prepare_clips` turns dataset clips into motion offsets and their log-mel (computed once, not
per step). :func:`sample_windows` then draws N windows from random clips. Each gets its aligned mel
window (the positive), K hard negatives (the same clip's audio shifted by ``min_shift``..``max_shift``
frames either way; the other windows of the batch are the easy negatives: other clips, other speakers),
and a negative for the realism score: the same window of a degraded copy of the motion (one degradation
per window, drawn with the weights of :class:`RealismNegatives`, applied to the window with ``context``
frames either side so smoothing and re-timing see real neighbours), or of an actor's output when the clip
has one, itself degraded in a share of the windows: noise on an actor's output raised its realism score
(0.25 -> 0.30, 0.05 -> 0.08 for two seeds), a cheap exploit RL could find, so it is a negative too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facerl.data.dataset import Clip
from facerl.reward.degrade import DEGRADATIONS, degrade
from facerl.reward.windows import MEL_PER_FRAME, WINDOW, reward_mel

ACTOR = "actor"    # the realism negative taken from an actor's output
POINTWISE = ("damp", "jitter")


@dataclass
class RealismNegatives:
    """Relative frequency of each realism negative (0: never), and how often an actor negative is degraded."""

    oversmooth: float = 1.0
    damp: float = 1.0
    jitter: float = 1.0
    freeze: float = 1.0
    time_warp: float = 1.0
    tremble: float = 3.0          # the weakest negative, drawn more often
    actor: float = 1.0            # the actor's output (clips that have one)
    degrade_actor: float = 0.5    # share of actor negatives that also get a degradation (drawn as above)

    def draw(self, rng: np.random.Generator, has_actor: bool) -> str:
        """One negative's recipe: a degradation, ``actor``, or ``actor+<degradation>``."""
        weights = np.array([getattr(self, k) for k in DEGRADATIONS] + [self.actor if has_actor else 0.0])
        kind = (DEGRADATIONS + (ACTOR,))[int(rng.choice(len(weights), p=weights / weights.sum()))]
        if kind == ACTOR and rng.random() < self.degrade_actor:
            own = weights[:-1]
            kind = f"{ACTOR}+{DEGRADATIONS[int(rng.choice(len(own), p=own / own.sum()))]}"
        return kind


@dataclass
class RewardClip:
    name: str
    subject: str
    motion: torch.Tensor               # (T, P) metres from the template
    mel: torch.Tensor                  # (F*T, M) raw log-mel
    generated: torch.Tensor | None = None   # (T, P) an actor's output for the same audio, if any


@dataclass
class WindowBatch:
    mesh: torch.Tensor        # (N, L, P) ground-truth motion (metres from the template)
    mel: torch.Tensor         # (N, 1, F*L, M) aligned audio
    hard_mel: torch.Tensor    # (N, K, 1, F*L, M) the same clip's audio, shifted
    shifts: torch.Tensor      # (N, K) the shifts in frames: |s| >= min_shift, then (``near``) one of +-1
    degraded: torch.Tensor    # (N, L, P) the same window of a degraded (or generated) copy of the motion
    degradation: list[str]    # (N,) which degradation (or "actor", "actor+<degradation>")
    clip: torch.Tensor        # (N,) index of the clip in the prepared list
    start: torch.Tensor       # (N,) first frame of the window

    def to(self, device) -> WindowBatch:
        return WindowBatch(self.mesh.to(device), self.mel.to(device), self.hard_mel.to(device), self.shifts,
                           self.degraded.to(device), self.degradation, self.clip, self.start)


def prepare_clip(clip: Clip, generated: torch.Tensor | None = None) -> RewardClip:
    motion = clip.vertices - clip.template
    mel = reward_mel(clip.audio[None], len(motion))[0]
    return RewardClip(clip.name, clip.subject, motion, mel, generated)


def sample_windows(clips: Sequence[RewardClip], n: int, rng: np.random.Generator, n_hard: int = 4,
                   min_shift: int = 2, max_shift: int = 15, context: int = 12, near: bool = False,
                   negatives: RealismNegatives | None = None) -> WindowBatch:
    """N windows from random clips; clips too short for a window and its shifted negatives are never drawn.
    ``near`` adds one more negative per window, shifted by one frame either way (K = n_hard + 1).
    ``negatives``: how the realism negatives are drawn (default: :class:`RealismNegatives`()'s weights)."""
    negatives = negatives or RealismNegatives()
    usable = [i for i, c in enumerate(clips) if len(c.motion) - WINDOW + 1 > min_shift]
    if not usable:
        raise ValueError("no clip is long enough for a window and its shifted negatives")
    span = WINDOW * MEL_PER_FRAME
    meshes, mels, hards, shifts, degraded, kinds, starts = [], [], [], [], [], [], []
    picks = rng.choice(usable, size=n).tolist()
    for i in picks:
        c = clips[i]
        n_pos = len(c.motion) - WINDOW + 1
        w = int(rng.integers(n_pos))
        s = _shifts(rng, w, n_pos, n_hard, min_shift, max_shift)                 # (K,)
        if near:
            s = torch.cat([s, _shifts(rng, w, n_pos, 1, 1, 1)])
        kind = negatives.draw(rng, c.generated is not None)
        meshes.append(c.motion[w: w + WINDOW])
        degraded.append(_degraded_window(c, w, kind, rng, context))
        mels.append(c.mel[MEL_PER_FRAME * w: MEL_PER_FRAME * w + span][None])
        hards.append(torch.stack([c.mel[MEL_PER_FRAME * (w + k): MEL_PER_FRAME * (w + k) + span][None]
                                  for k in s.tolist()]))
        shifts.append(s)
        kinds.append(kind)
        starts.append(w)
    return WindowBatch(torch.stack(meshes), torch.stack(mels), torch.stack(hards), torch.stack(shifts),
                       torch.stack(degraded), kinds, torch.tensor(picks), torch.tensor(starts))


def _degraded_window(c: RewardClip, w: int, kind: str, rng: np.random.Generator, context: int) -> torch.Tensor:
    source, _, kind = kind.rpartition("+")                  # "actor+jitter" -> ("actor", "+", "jitter")
    motion = c.generated if ACTOR in (source, kind) else c.motion
    if kind == ACTOR:
        return motion[w: w + WINDOW]
    if kind in POINTWISE:
        context = 0                   # frame by frame: the window alone gives the same result, faster
    lo, hi = max(0, w - context), min(len(motion), w + WINDOW + context)
    return degrade(motion[lo:hi], kind, rng)[w - lo: w - lo + WINDOW]


def _shifts(rng: np.random.Generator, w: int, n_pos: int, n_hard: int, lo: int, hi: int) -> torch.Tensor:
    """n_hard shifts k with lo <= |k| <= hi that keep window w + k inside the clip (0 <= w + k < n_pos)."""
    options = [k for k in range(-hi, hi + 1) if abs(k) >= lo and 0 <= w + k < n_pos]
    return torch.tensor(rng.choice(options, size=n_hard, replace=len(options) < n_hard))
