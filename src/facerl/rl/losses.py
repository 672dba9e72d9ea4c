"""RL losses and CleanRL's diagnostics: pure functions of log-probs, advantages, values and masks.

Dimensions: N sampled sequences, T frames, K motion coefficients, W windows.
"""

from __future__ import annotations

import math

import torch


def masked_frame_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x (N, T) over the real frames (N, T) bool: a scalar."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, frame_adv: torch.Tensor, frame_mask: torch.Tensor,
                clip: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The policy-gradient surrogate -mean(ratio * A) over real frames; ``clip`` > 0: PPO's clipped surrogate
    -mean(min(ratio * A, clamp(ratio, 1 - clip, 1 + clip) * A)). logp, old_logp, frame_adv (N, T).

    Diagnostics (CleanRL): approx_kl = mean((ratio - 1) - log ratio), the unbiased low-variance estimator of
    KL(old || new); clipfrac = share of frames whose ratio left [1 - clip, 1 + clip]."""
    log_ratio = logp - old_logp.detach()
    ratio = log_ratio.exp()
    adv = frame_adv.detach()
    surrogate = ratio * adv
    if clip > 0:
        surrogate = torch.minimum(surrogate, ratio.clamp(1 - clip, 1 + clip) * adv)
    loss = -masked_frame_mean(surrogate, frame_mask)
    with torch.no_grad():
        approx_kl = masked_frame_mean((ratio - 1) - log_ratio, frame_mask)
        clipped = ((ratio - 1).abs() > clip).float() if clip > 0 else torch.zeros_like(ratio)
        clipfrac = masked_frame_mean(clipped, frame_mask)
    return loss, {"approx_kl": approx_kl.item(), "clipfrac": clipfrac.item()}


def value_loss(value: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of values against their targets over real entries; (N, W) or (N,) with a mask."""
    m = mask.to(value.dtype)
    return (((value - target.detach()) ** 2) * m).sum() / m.sum().clamp_min(1.0)


def explained_variance(value: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(target - value) / Var(target) over real entries (1: perfect critic, 0: no better than a
    constant, < 0: worse); NaN when the targets do not vary."""
    t, v = target.detach()[mask].double(), value.detach()[mask].double()
    var = t.var() if t.numel() > 1 else torch.tensor(0.0)
    return math.nan if var <= 0 else float(1 - (t - v).var() / var)


def gaussian_kl(mean: torch.Tensor, log_std: torch.Tensor, ref_mean: torch.Tensor, ref_log_std: torch.Tensor,
                frame_mask: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std) || N(ref_mean, ref_std)) summed over K, mean over real frames; means (N, T, K),
    log-stds (K,)."""
    var, ref_var = (2 * log_std).exp(), (2 * ref_log_std).exp()
    kl = (ref_log_std - log_std + (var + (mean - ref_mean) ** 2) / (2 * ref_var) - 0.5).sum(-1)   # (N, T)
    return masked_frame_mean(kl, frame_mask)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the per-frame policy N(mean, diag(std^2)) over K coefficients: the sum of
    0.5 * log(2 pi e) + log std."""
    return (0.5 * math.log(2 * math.pi * math.e) + log_std).sum()
