"""Rollout collection: G stochastic samples per clip, scored once by the frozen reward, with the advantages
every update on them uses.

Dimensions: B clips, G samples, N = B*G (a clip's samples adjacent), T frames, K motion coefficients, W
windows, Da audio features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from facerl.data.dataset import Batch
from facerl.models.actor import Actor
from facerl.reward.frozen import FrozenReward, masked_mean
from facerl.rl import advantages as A
from facerl.rl import noise as noises
from facerl.rl.critic import SampleCritic, StateCritic


@dataclass
class Rollouts:
    """Fixed for every update on one batch."""

    sample: torch.Tensor          # (N, T, K) sampled motion coefficients
    frame_mask: torch.Tensor      # (N, T) bool
    window_mask: torch.Tensor     # (N, W) bool
    reward_w: torch.Tensor        # (N, W) (lip + real) * reward_scale
    features: torch.Tensor | None  # (N, W, 2E) reward features of the sample (sample_critic only)
    frame_adv: torch.Tensor       # (N, T) advantage of each frame
    old_logp: torch.Tensor        # (N, T) log-density under the policy that sampled
    ref_means: torch.Tensor | None  # (N, T, K) the frozen reference's means along the sample (KL only)
    stats: dict[str, float]


def repeat(x: torch.Tensor, g: int) -> torch.Tensor:
    return x.repeat_interleave(g, 0)


@torch.no_grad()
def collect(actor: Actor, reward: FrozenReward, batch: Batch, feats: torch.Tensor, mel: torch.Tensor, *,
            samples: int, baseline: str, per_window: bool, normalize: bool, noise: str, noise_frames: float,
            reward_scale: float, critic: StateCritic | SampleCritic | None, reference: Actor | None,
            generator: torch.Generator | None = None) -> Rollouts:
    """feats (B, T, Da) the actor's audio features, mel (B, F*T, M) the reward's log-mel of the batch."""
    g = samples
    feats_r, style_r, mel_r = repeat(feats, g), repeat(batch.style, g), repeat(mel, g)
    fmask = repeat(batch.frame_mask, g)
    n, t, k = feats_r.shape[0], feats.shape[1], actor.motion.dim
    e = noises.draw((n, t, k), noise, g, noise_frames, generator, feats.device)
    rollout = actor.generate(feats_r, style_r, noise=e)
    scores = reward.score(actor.motion.decode(rollout.motion), mel_r, fmask, features=baseline == "sample_critic")
    wmask = scores.mask
    reward_w = scores.reward * reward_scale                                               # (N, W)
    value_w = None
    if isinstance(critic, StateCritic):
        value_w = critic(feats_r, style_r)
    elif isinstance(critic, SampleCritic):
        value_w = critic(scores.features)
    raw = A.advantages(reward_w, wmask, g, baseline, per_window, value_w)                 # (N, W) or (N,)
    adv = A.normalize(raw, wmask if per_window else None) if normalize else raw
    old_logp = noises.log_prob(rollout.mean, rollout.motion, actor.log_std, noise, noise_frames)
    ref_means = reference(feats_r, style_r, rollout.motion) if reference is not None else None
    seq_reward = masked_mean(reward_w, wmask)
    real = raw[wmask] if per_window else raw
    stats = {"objective/reward": seq_reward.mean().item(),
             "objective/lip": scores.mean(scores.lip).mean().item(),
             "objective/real": scores.mean(scores.real).mean().item(),
             "objective/reward_std_in_group": seq_reward.view(-1, g).std(1).mean().item() if g > 1 else 0.0,
             "objective/advantage_var": real.var().item() if real.numel() > 1 else 0.0}
    return Rollouts(rollout.motion, fmask, wmask, reward_w, scores.features, A.per_frame(adv, wmask, t),
                    old_logp, ref_means, stats)
