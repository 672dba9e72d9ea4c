"""Loading trained reward models / judges and scoring whole sequences window by window.

Dimensions: T frames (30 fps), P = V*3 coordinates, W = T - L + 1 windows (stride 1), L window
length (5), F*L mel frames per window (20), M mel bins (128), S shifts, E embedding size.

A sequence is scored as motion offsets (T, P) (metres from the speaker's template) plus its log-mel
(F*T, M) from :func:`facerl.reward.windows.reward_mel` (which pads audio shorter than the motion by
repeating its last frame: callers that care compare the lengths first); every 5-frame window gets a lip, real and value
score. :func:`sync_by_shift` gives a backbone's cosine sync per window for each audio shift, which the
calibration report and the judge use for offset estimates.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from facerl.config import to_dataclass
from facerl.errors import FacerlError
from facerl.reward.model import BackboneConfig, ScoreHead, Scores, SpeechMeshTransformer
from facerl.reward.windows import MEL_PER_FRAME, WINDOW, mel_windows, mesh_windows
from facerl.train.common import load_checkpoint, reading_checkpoint

REWARD_KIND = "facerl-reward"


class RewardModel(nn.Module):
    """Backbone + score head: mesh windows (N, L, P) + mel windows (N, 1, F*L, M) -> Scores (N,)."""

    def __init__(self, backbone: SpeechMeshTransformer, head: ScoreHead) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, mesh: torch.Tensor, mel: torch.Tensor) -> Scores:
        return self.head(*self.backbone(mesh, mel))


def _checkpoint_path(path: str | os.PathLike, name: str) -> Path:
    """``name`` in a reward / judge folder; a file path stands for its folder."""
    path = Path(path)
    return (path if path.is_dir() else path.parent) / name


def load_backbone(path: str | os.PathLike, device: torch.device | str = "cpu") -> SpeechMeshTransformer:
    """A trained backbone (eval mode, no gradients) from ``<run>/reward`` or ``<run>/judge`` (or its backbone.pt)."""
    path = _checkpoint_path(path, "backbone.pt")
    ckpt = load_checkpoint(path, REWARD_KIND, keys=("meta", "backbone"))
    with reading_checkpoint(path):
        cfg = to_dataclass(BackboneConfig, ckpt["meta"]["backbone_config"], "reward.")
        backbone = SpeechMeshTransformer(ckpt["meta"]["n_coords"], cfg)
        backbone.load_state_dict(ckpt["backbone"])
    return backbone.to(device).eval().requires_grad_(False)


def load_reward(folder: str | os.PathLike, device: torch.device | str = "cpu") -> RewardModel:
    """The frozen reward model (backbone + head, eval mode, no gradients) from a ``<run>/reward`` folder."""
    backbone = load_backbone(folder, device)
    path = _checkpoint_path(folder, "head.pt")
    ckpt = load_checkpoint(path, REWARD_KIND, keys=("meta", "head"))
    with reading_checkpoint(path):
        if not ckpt["meta"].get("head_trained", True):
            raise FacerlError(f"{folder} holds a judge (backbone only), not a reward model with a score head")
        head = ScoreHead(backbone.cfg.embed)
        state = ckpt["head"]
        if any(k.startswith("value.") and k not in head.state_dict() for k in state):
            # Written before the value MLP had its own layers: reward training never trains the value, so a
            # fresh one is equivalent; lip and real load as trained.
            state = {k: v for k, v in state.items() if not k.startswith("value.")}
            state.update({k: v for k, v in head.state_dict().items() if k.startswith("value.")})
        head.load_state_dict(state)
    return RewardModel(backbone, head.to(device)).eval().requires_grad_(False)


def check_sequence(backbone: SpeechMeshTransformer, motion: torch.Tensor, mel: torch.Tensor) -> None:
    """One-line errors for sequences the model cannot score."""
    t, p = motion.shape
    if p != backbone.n_coords:
        raise FacerlError(f"the model was trained on meshes of {backbone.n_coords // 3} vertices; "
                          f"this sequence has {p // 3}")
    if t < WINDOW:
        raise FacerlError(f"a sequence needs at least {WINDOW} frames (1/6 s at 30 fps) to be scored; it has {t}")
    if mel.shape[0] < 4 * t:
        raise FacerlError(f"the audio is shorter than the motion ({mel.shape[0] / 120:.2f} s vs {t / 30:.2f} s)")
    if not torch.isfinite(motion).all():
        raise FacerlError("the motion holds NaN or infinite values")


def windows(motion: torch.Tensor, mel: torch.Tensor, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, P), (>= F*T, M) -> mesh windows (W, L, P) and mel windows (W, 1, F*L, M), audio moved by
    ``shift``. Mel frames beyond the motion are ignored."""
    return mesh_windows(motion[None])[0], mel_windows(mel[None, :MEL_PER_FRAME * len(motion)], shift=shift)[0]


def score_sequence(model: RewardModel, motion: torch.Tensor, mel: torch.Tensor, chunk: int = 1024) -> Scores:
    """Lip, real and value of every window (W,) of one sequence (no gradients, on the model's device)."""
    check_sequence(model.backbone, motion, mel)
    device = next(model.parameters()).device
    mesh, mel_w = windows(motion, mel)
    parts = []
    with torch.no_grad():
        for lo in range(0, len(mesh), chunk):
            parts.append(model(mesh[lo:lo + chunk].to(device), mel_w[lo:lo + chunk].to(device)))
    return Scores(*(torch.cat([getattr(s, name) for s in parts]).cpu() for name in Scores.__dataclass_fields__))


@torch.no_grad()
def features_by_shift(backbone: SpeechMeshTransformer, motion: torch.Tensor, mel: torch.Tensor,
                      shifts: list[int], chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """vertex_feat (W, E) and audio_feat (S, W, E) of every window, the audio moved by each shift."""
    check_sequence(backbone, motion, mel)
    device = backbone.mel_mean.device
    mesh, _ = windows(motion, mel)
    mel = mel[:MEL_PER_FRAME * len(motion)]
    v = torch.cat([backbone.encode_mesh(mesh[lo:lo + chunk].to(device)) for lo in range(0, len(mesh), chunk)])
    audio = []
    for k in shifts:
        mel_w = mel_windows(mel[None], shift=k)[0]
        audio.append(torch.cat([backbone.encode_audio(mel_w[lo:lo + chunk].to(device))
                                for lo in range(0, len(mel_w), chunk)]))
    return v, torch.stack(audio)


def sync_by_shift(backbone: SpeechMeshTransformer, motion: torch.Tensor, mel: torch.Tensor,
                  shifts: list[int]) -> torch.Tensor:
    """Cosine sync (S, W) of every window with its audio moved by each shift (CPU)."""
    v, a = features_by_shift(backbone, motion, mel, shifts)
    return torch.nn.functional.cosine_similarity(v[None], a, dim=-1).cpu()
