"""Training windows for the reward model, sampled from dataset batches.

Dimensions: B clips, T frames (30 fps), P = V*3 coordinates, N sampled windows, L window length (5),
K hard negatives per window, F*L mel frames per window (20), M mel bins (128).

From every clip, ``per_clip`` random windows are taken. Each gets its aligned mel window (the
positive), K hard negatives (the same clip's audio shifted by ``min_shift``..``max_shift`` frames
either way; other clips in the batch are the easy negatives), and the same window of a degraded copy
of the clip's motion (one randomly chosen degradation per clip) for the realism score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facerl.data.dataset import Batch
from facerl.reward.degrade import DEGRADATIONS, degrade
from facerl.reward.windows import MEL_PER_FRAME, WINDOW, reward_mel


@dataclass
class WindowBatch:
    mesh: torch.Tensor        # (N, L, P) ground-truth motion (metres from the template)
    mel: torch.Tensor         # (N, 1, F*L, M) aligned audio
    hard_mel: torch.Tensor    # (N, K, 1, F*L, M) the same clip's audio, shifted
    shifts: torch.Tensor      # (N, K) the shifts in frames (never |s| < min_shift)
    degraded: torch.Tensor    # (N, L, P) the same window of a degraded copy of the clip's motion
    degradation: list[str]    # (N,) which degradation
    clip: torch.Tensor        # (N,) index of the clip in the batch


def sample_windows(batch: Batch, rng: np.random.Generator, per_clip: int = 8, n_hard: int = 4,
                   min_shift: int = 2, max_shift: int = 15) -> WindowBatch:
    """Windows from every clip of a (CPU) batch; clips shorter than a window plus ``min_shift`` are skipped."""
    motion = batch.vertices - batch.template[:, None]                           # (B, T, P)
    mel = reward_mel(batch.audio, batch.vertices.shape[1])                      # (B, F*T, M)
    lengths = batch.frame_mask.sum(1).tolist()
    meshes, mels, hards, shifts, degraded, kinds, clips = [], [], [], [], [], [], []
    span = WINDOW * MEL_PER_FRAME
    for b, t in enumerate(lengths):
        n_pos = t - WINDOW + 1
        if n_pos <= min_shift:
            continue
        kind = DEGRADATIONS[int(rng.integers(len(DEGRADATIONS)))]
        bad = degrade(motion[b, :t], kind, rng)                                 # (T_b, P)
        for w in rng.integers(0, n_pos, size=per_clip).tolist():
            s = _shifts(rng, w, n_pos, n_hard, min_shift, max_shift)            # (K,)
            meshes.append(motion[b, w: w + WINDOW])
            degraded.append(bad[w: w + WINDOW])
            mels.append(mel[b, MEL_PER_FRAME * w: MEL_PER_FRAME * w + span][None])
            hards.append(torch.stack([mel[b, MEL_PER_FRAME * (w + k): MEL_PER_FRAME * (w + k) + span][None]
                                      for k in s.tolist()]))
            shifts.append(s)
            kinds.append(kind)
            clips.append(b)
    if not meshes:
        raise ValueError("no clip in the batch is long enough for a window and its shifted negatives")
    return WindowBatch(torch.stack(meshes), torch.stack(mels), torch.stack(hards), torch.stack(shifts),
                       torch.stack(degraded), kinds, torch.tensor(clips))


def _shifts(rng: np.random.Generator, w: int, n_pos: int, n_hard: int, lo: int, hi: int) -> torch.Tensor:
    """n_hard shifts k with lo <= |k| <= hi that keep window w + k inside the clip (0 <= w + k < n_pos)."""
    options = [k for k in range(-hi, hi + 1) if abs(k) >= lo and 0 <= w + k < n_pos]
    return torch.tensor(rng.choice(options, size=n_hard, replace=len(options) < n_hard))
