"""Sliding 5-frame mesh windows and their mel windows: what the reward model scores.

Dimensions: B batch, T frames (30 fps), V vertices, W windows, L window length in frames (5),
M mel bins (128), F mel frames per video frame (4), S audio samples (16 kHz).

Window w covers video frames w .. w+L-1 and mel frames F*w .. F*(w+L)-1, i.e. the same 1/6 s of
time: a mesh clip (B, W, L, V*3) pairs with a mel clip (B, W, 1, F*L, M) = (B, W, 1, 20, 128).
"""

from __future__ import annotations

import torch

from facerl.audio import SAMPLE_RATE
from facerl.models.audio import align_to_frames, log_mel

WINDOW = 5            # frames per window (1/6 s at 30 fps)
MEL_PER_FRAME = 4     # mel frames per video frame (120 Hz)
N_MELS = 128
MEL_HOP = 133         # ~120 Hz; resampled to exactly MEL_PER_FRAME per frame by linear interpolation


def reward_mel(audio: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B, S) 16 kHz -> (B, F*T, M): 128-bin log-mel at exactly 4 frames per 30 fps video frame."""
    mel = log_mel(audio, n_mels=N_MELS, hop=MEL_HOP, n_fft=512)                 # (B, N, M) at ~120.3 Hz
    return align_to_frames(mel, SAMPLE_RATE / MEL_HOP, MEL_PER_FRAME * n_frames, fps=30 * MEL_PER_FRAME)


def mesh_windows(motion: torch.Tensor, length: int = WINDOW) -> torch.Tensor:
    """(B, T, V*3) -> (B, W, L, V*3) with W = T - L + 1 (stride 1)."""
    return motion.unfold(1, length, 1).permute(0, 1, 3, 2)


def mel_windows(mel: torch.Tensor, length: int = WINDOW, shift: int = 0) -> torch.Tensor:
    """(B, F*T, M) -> (B, W, 1, F*L, M) windows aligned with :func:`mesh_windows`, the audio moved by
    ``shift`` video frames (positive: the audio comes from later). Windows whose shifted audio would
    fall outside the clip take the edge (clamped), so every window exists for every shift."""
    t = mel.shape[1] // MEL_PER_FRAME
    starts = (torch.arange(t - length + 1, device=mel.device) + shift).clamp(0, t - length) * MEL_PER_FRAME
    idx = starts[:, None] + torch.arange(length * MEL_PER_FRAME, device=mel.device)[None]   # (W, F*L)
    return mel[:, idx][:, :, None]                                                        # (B, W, 1, F*L, M)


def window_mask(frame_mask: torch.Tensor, length: int = WINDOW) -> torch.Tensor:
    """(B, T) bool real frames -> (B, W) bool: windows made only of real frames."""
    return frame_mask.unfold(1, length, 1).all(-1)
