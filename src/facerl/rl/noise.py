"""Exploration noise for rollouts, with the log-density each draw must be scored by.

Dimensions: N sequences (B clips x G samples, a clip's rows adjacent), T frames, K motion coefficients.

The policy emits a_t = mean_t + std * e_t. With independent draws e_t ~ N(0, 1) the per-frame log-density is
the actor's own :meth:`~facerl.models.actor.Actor.log_prob`. Two variance reducers change the draws:
* ``antithetic``: sample 2j+1 of a clip uses -e of sample 2j (same marginal law, so the independent
  log-density is still that of each sample; their rewards are negatively correlated around the mean);
* ``smooth``: e = L z with z ~ N(0, I) and L the Cholesky factor of a Gaussian temporal correlation of width
  ``smooth_frames``: exploration that moves the lips over several frames instead of flickering. The
  density of a sequence factorises over frames as N(z_t) / L_tt, so :func:`log_prob` scores each frame
  exactly (z = L^-1 (a - mean) / std).
"""

from __future__ import annotations

import math

import torch

NOISES = ("white", "antithetic", "smooth")


def smooth_factor(n_frames: int, width: float, device=None) -> torch.Tensor:
    """Cholesky factor L (T, T) of the correlation exp(-(i - j)^2 / (2 width^2)) (+ a little white noise
    so it is well conditioned): every draw L z has unit variance per frame."""
    i = torch.arange(n_frames, dtype=torch.float64, device=device)
    corr = torch.exp(-((i[:, None] - i[None]) ** 2) / (2 * width ** 2))
    corr = 0.95 * corr + 0.05 * torch.eye(n_frames, dtype=torch.float64, device=device)
    return torch.linalg.cholesky(corr).float()


def draw(shape: tuple[int, int, int], kind: str, g: int, width: float = 3.0, generator=None,
         device=None) -> torch.Tensor:
    """Standard-normal-marginal draws e (N, T, K) of the given kind."""
    n, t, k = shape
    z = torch.randn(shape, generator=generator, device=device)
    if kind == "white":
        return z
    if kind == "antithetic":
        if g % 2:
            raise ValueError("antithetic noise needs an even number of samples per clip")
        pairs = z.view(n // 2, 2, t, k)
        return torch.stack([pairs[:, 0], -pairs[:, 0]], 1).view(shape)
    if kind == "smooth":
        return torch.einsum("ts,nsk->ntk", smooth_factor(t, width, device), z)
    raise ValueError(f"unknown noise {kind!r}")


def log_prob(mean: torch.Tensor, sample: torch.Tensor, log_std: torch.Tensor, kind: str,
             width: float = 3.0) -> torch.Tensor:
    """Per-frame log-density (N, T) of ``sample`` (N, T, K) under policy means (N, T, K) and log-std (K,)."""
    e = (sample - mean) / log_std.exp()                                         # (N, T, K)
    if kind == "smooth":
        factor = smooth_factor(mean.shape[1], width, mean.device)
        e = torch.linalg.solve_triangular(factor, e, upper=False)              # z = L^-1 e, per sequence
        log_diag = factor.diagonal().log()[None, :, None]                       # (1, T, 1)
    else:
        log_diag = 0.0
    return (-0.5 * e ** 2 - 0.5 * math.log(2 * math.pi) - log_std - log_diag).sum(-1)
