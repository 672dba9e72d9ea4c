"""RL's critics, saved with the RL run (never inside the frozen reward model).

Dimensions: N sequences, T frames, Da the actor's audio feature width, W = T - L + 1 windows, E the reward
backbone's embedding size.

* :class:`StateCritic` is V(s) of the state only: the actor's audio features (detached), the speaker style
  and the position in time; it never sees the motion it scores, so subtracting it leaves the policy
  gradient unbiased. A small temporal conv net gives a value per frame; a window's value is the mean over
  its frames.
* :class:`SampleCritic` is the seed's formulation: an MLP on the frozen reward's features of the *scored
  sample's* windows. It can learn the reward of the very sample it scores and drive the advantage to zero
  (measured by the RL benchmark); runnable as ``trainer.baseline=sample_critic``.
"""

from __future__ import annotations

import torch
from torch import nn

from facerl.reward.windows import WINDOW


class StateCritic(nn.Module):
    """audio features (N, T, Da) + style (N,) (-1: average) -> window values (N, W)."""

    def __init__(self, audio_dim: int, n_styles: int, hidden: int = 128) -> None:
        super().__init__()
        self.style = nn.Embedding(n_styles + 1, hidden)                    # index n_styles: the average style
        self.inp = nn.Linear(audio_dim, hidden)
        self.conv = nn.Sequential(nn.GELU(), nn.Conv1d(hidden, hidden, 9, padding=4), nn.GELU(),
                                  nn.Conv1d(hidden, hidden, 9, padding=4), nn.GELU())
        self.out = nn.Conv1d(hidden, 1, 1)
        self.n_styles = n_styles

    def forward(self, audio_feats: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        style = torch.where(style < 0, torch.full_like(style, self.n_styles), style)
        x = self.inp(audio_feats.detach()) + self.style(style)[:, None]   # (N, T, H)
        frame_value = self.out(self.conv(x.transpose(1, 2)))[:, 0]         # (N, T)
        return frame_value.unfold(1, WINDOW, 1).mean(-1)                   # (N, W)


class SampleCritic(nn.Module):
    """The seed's value: reward features of the sample's windows (N, W, 2E) -> values (N, W)."""

    def __init__(self, embed: int, hidden: int = 256) -> None:
        super().__init__()
        self.value = nn.Sequential(nn.Linear(2 * embed, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.value(features.detach())[..., 0]
