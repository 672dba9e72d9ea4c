"""Supervised losses on padded batches. Dimensions: B batch, T frames, P coordinates (V*3, or K motion coefficients).

With a :class:`MotionSpace` whose basis rows are orthogonal, the vertex MSE of a prediction in the
span of the basis equals a weighted MSE of its coefficients plus a constant (the target's part outside
the span): ``|B^T (c - c*)|^2 = sum_k |b_k|^2 (c_k - c*_k)^2``. Passing ``weights = |b_k|^2 / (V*3)``
therefore gives exactly the gradients of FaceFormer's vertex MSE at a fraction of the cost.
"""

from __future__ import annotations

import torch


def masked_mse(pred: torch.Tensor, target: torch.Tensor, frame_mask: torch.Tensor,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over real frames: (B, T, P), (B, T, P), (B, T) bool -> scalar.

    ``weights`` (P,) replaces the plain mean over coordinates by a weighted sum.
    """
    diff2 = (pred - target) ** 2
    sq = diff2.mean(-1) if weights is None else diff2 @ weights           # (B, T)
    return (sq * frame_mask).sum() / frame_mask.sum().clamp(min=1)


def velocity_mse(pred: torch.Tensor, target: torch.Tensor, frame_mask: torch.Tensor,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
    """MSE of frame-to-frame differences (FaceFormer-family velocity loss), over pairs of real frames."""
    pair_mask = frame_mask[:, 1:] & frame_mask[:, :-1]                    # (B, T-1)
    return masked_mse(pred[:, 1:] - pred[:, :-1], target[:, 1:] - target[:, :-1], pair_mask, weights)
