"""Advantages of sampled motion: pure functions of window rewards, so each can be checked by hand.

Dimensions: B clips, G samples per clip (rows of one clip are adjacent: row b*G + j), N = B*G, W windows,
T = W + L - 1 frames, L window length (5).

An advantage is a reward minus a baseline that does not depend on the sample it scores:
* ``none``: no baseline;
* ``group``: the mean over the clip's G samples (GRPO-style; per window: the mean of the *same* window
  over the G samples, so a window is compared with the same 1/6 s of speech);
* ``critic``: a learned V(s) of the state (audio, style, time), never of the action (facerl.rl.critic);
* ``sample_critic``: the seed's formulation, a value of the scored sample's own reward features. It is an
  action-dependent baseline (biased), kept to measure what it does.
Per sequence (``per_window=False``) every frame of a sample shares one advantage; per window each frame gets
the mean advantage of the windows that contain it (:func:`frame_advantage`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facerl.reward.frozen import masked_mean
from facerl.reward.windows import WINDOW

BASELINES = ("group", "critic", "sample_critic", "none")


def group_mean(x: torch.Tensor, g: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over each clip's G samples, broadcast back to every sample: (N, ...) -> (N, ...); with ``mask``
    (N, ...) bool only real entries count (entries real in no sample get 0)."""
    shape = (-1, g, *x.shape[1:])
    if mask is None:
        return x.view(shape).mean(1, keepdim=True).expand(shape).reshape(x.shape)
    m = mask.to(x.dtype).view(shape)
    mean = (x.view(shape) * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1.0)
    return mean.expand(shape).reshape(x.shape)


def advantages(reward_w: torch.Tensor, mask: torch.Tensor, g: int, baseline: str, per_window: bool,
               value_w: torch.Tensor | None = None) -> torch.Tensor:
    """Raw advantages: (N, W) per window, or (N,) per sequence.

    reward_w (N, W) window rewards, mask (N, W) bool real windows, value_w (N, W) the critic's value of each
    window (baselines ``critic`` and ``sample_critic``)."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}")
    if baseline in ("critic", "sample_critic") and value_w is None:
        raise ValueError(f"baseline {baseline} needs the critic's values")
    if per_window:
        if baseline == "group":
            base = group_mean(reward_w, g, mask)
        elif baseline == "none":
            base = torch.zeros_like(reward_w)
        else:
            base = value_w
        return (reward_w - base) * mask
    ret = masked_mean(reward_w, mask)                                          # (N,)
    if baseline == "group":
        return ret - group_mean(ret, g)
    if baseline == "none":
        return ret
    return ret - masked_mean(value_w, mask)


def normalize(adv: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Divide by the std of the real entries (not centred: the baseline did that)."""
    real = adv[mask] if mask is not None else adv.flatten()
    if real.numel() < 2:
        return adv
    return adv / real.std().clamp_min(eps)


def frame_advantage(window_adv: torch.Tensor, mask: torch.Tensor, length: int = WINDOW) -> torch.Tensor:
    """Per-window advantages (N, W) -> per-frame (N, T): the mean advantage of the real windows containing
    each frame (frames in no real window get 0)."""
    ones = torch.ones(1, 1, length, device=window_adv.device, dtype=window_adv.dtype)
    m = mask.to(window_adv.dtype)
    total = F.conv1d(F.pad((window_adv * m)[:, None], (length - 1, length - 1)), ones)[:, 0]    # (N, T)
    count = F.conv1d(F.pad(m[:, None], (length - 1, length - 1)), ones)[:, 0]
    return total / count.clamp_min(1.0)


def per_frame(adv: torch.Tensor, mask: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Advantages (N,) per sequence or (N, W) per window -> (N, T) per frame."""
    if adv.dim() == 1:
        return adv[:, None].expand(-1, n_frames)
    return frame_advantage(adv, mask)
