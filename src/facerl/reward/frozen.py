"""The frozen reward model and the judge behind one scoring API: every caller (RL, the perceptual loss,
`facerl score`, `evaluate`, the calibration, `compare`) scores motion through :class:`FrozenReward`.

Dimensions: N sequences, T frames (30 fps), P = V*3 coordinates, W = T - L + 1 windows (stride 1), L
window length (5), F*T mel frames (4 per video frame), M mel bins (128), S audio shifts, E embedding.

A sequence is motion offsets (T, P) (metres from the speaker's template) plus its log-mel (F*T, M) from
:meth:`FrozenReward.mel`; every 5-frame window gets the backbone's cosine ``sync`` and, for a reward
model (backbone + score head), a ``lip`` and a ``real`` score in (0, 1). A judge is a backbone alone:
``sync`` only. The models are frozen for good: eval mode (no dropout) whatever ``train()`` asks, no
parameter requires a gradient; the perceptual loss gets its gradient through the *input* motion.

Offset estimates (SyncNet's): window scores for the audio moved by each shift in -15..15 frames; the
best-scoring shift should be 0, and the margin of the aligned score over the far shifts (>= 2 frames) is
the sync confidence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facerl.config import to_dataclass
from facerl.errors import FacerlError
from facerl.reward.model import BackboneConfig, ScoreHead, SpeechMeshTransformer
from facerl.reward.windows import MEL_PER_FRAME, WINDOW, mel_windows, mesh_windows, reward_mel, window_mask
from facerl.utils.checkpoint import load_checkpoint, reading_checkpoint

REWARD_KIND = "facerl-reward"
MAX_SHIFT = 15
SHIFTS = list(range(-MAX_SHIFT, MAX_SHIFT + 1))
MIN_SHIFT = 2      # shifts of at least this many frames count as "out of sync"


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis of the real entries: (..., L), (..., L) bool -> (...)."""
    m = mask.to(x.dtype)
    return (x * m).sum(-1) / m.sum(-1).clamp_min(1.0)


@dataclass
class WindowScores:
    """Scores of every window of N sequences; padded windows are False in ``mask``."""

    sync: torch.Tensor                  # (N, W) cosine of the backbone's vertex and audio features
    mask: torch.Tensor                  # (N, W) bool: windows made only of real frames
    lip: torch.Tensor | None = None     # (N, W) in sync (reward models only)
    real: torch.Tensor | None = None    # (N, W) looks like real motion (reward models only)
    features: torch.Tensor | None = None  # (N, W, 2E) concat(vertex, audio) features, when asked for

    @property
    def reward(self) -> torch.Tensor:
        """(N, W) what RL maximises per window: lip + real."""
        if self.lip is None or self.real is None:
            raise FacerlError("a judge has no lip / real score (it is a sync backbone only)")
        return self.lip + self.real

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """(N, W) -> (N,) mean over each sequence's real windows."""
        return masked_mean(x, self.mask)


class FrozenReward(nn.Module):
    """A trained sync backbone (+ the lip / real score head for a reward model), frozen."""

    def __init__(self, backbone: SpeechMeshTransformer, head: ScoreHead | None = None, source: str = "") -> None:
        super().__init__()
        self.backbone, self.head, self.source = backbone, head, source
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenReward:
        """Always eval mode: a frozen reward never runs dropout, whatever a parent module's train() says."""
        return super().train(False)

    @property
    def is_judge(self) -> bool:
        return self.head is None

    @property
    def device(self) -> torch.device:
        return self.backbone.mel_mean.device

    @classmethod
    def load(cls, folder: str | os.PathLike, device: torch.device | str = "cpu", judge: bool = False) -> FrozenReward:
        """A reward model from ``<run>/reward`` (backbone.pt + head.pt), or with ``judge=True`` the backbone
        alone of ``<run>/judge`` (or of a reward folder). A file path stands for its folder."""
        path = Path(folder)
        folder = path if path.is_dir() else path.parent
        backbone = _load_backbone(folder / "backbone.pt")
        head = None if judge else _load_head(folder / "head.pt", backbone.cfg.embed, folder)
        return cls(backbone, head, str(folder)).to(device)

    @staticmethod
    def mel(audio: torch.Tensor, n_frames: int) -> torch.Tensor:
        """(N, S) 16 kHz speech -> (N, F*n_frames, M) log-mel, what :meth:`score` takes as audio."""
        return reward_mel(audio, n_frames)

    def check(self, offsets: torch.Tensor, mel: torch.Tensor) -> None:
        """One-line errors for sequences (N, T, P) this model cannot score."""
        t, p = offsets.shape[-2:]
        if p != self.backbone.n_coords:
            raise FacerlError(f"the model was trained on meshes of {self.backbone.n_coords // 3} vertices; "
                              f"this sequence has {p // 3}")
        if t < WINDOW:
            raise FacerlError(f"a sequence needs at least {WINDOW} frames (1/6 s at 30 fps) to be scored; it has {t}")
        if mel.shape[-2] < MEL_PER_FRAME * t:
            raise FacerlError(f"the audio is shorter than the motion ({mel.shape[-2] / 120:.2f} s vs {t / 30:.2f} s)")
        if not torch.isfinite(offsets).all():
            raise FacerlError("the motion holds NaN or infinite values")

    def score(self, offsets: torch.Tensor, mel: torch.Tensor, frame_mask: torch.Tensor | None = None, *,
              features: bool = False, grad: bool = False, chunk: int = 4096) -> WindowScores:
        """Window scores of N sequences: offsets (N, T, P) or (T, P), mel (N, >= F*T, M), frame_mask (N, T) bool
        (default: all real). ``grad``: keep the graph to the input motion (the perceptual loss)."""
        if offsets.dim() == 2:
            offsets, mel = offsets[None], mel[None]
        self.check(offsets, mel)
        n, t = offsets.shape[:2]
        if frame_mask is None:
            frame_mask = torch.ones(n, t, dtype=torch.bool, device=offsets.device)
        mesh = mesh_windows(offsets).flatten(0, 1)                                   # (N*W, L, P)
        mel_w = mel_windows(mel[:, :MEL_PER_FRAME * t]).flatten(0, 1)               # (N*W, 1, F*L, M)
        parts = []
        with torch.set_grad_enabled(grad):
            for lo in range(0, len(mesh), chunk):
                v, a = self.backbone(mesh[lo:lo + chunk].to(self.device), mel_w[lo:lo + chunk].to(self.device))
                part = {"sync": SpeechMeshTransformer.sync(v, a)}
                if self.head is not None:
                    s = self.head(v, a)
                    part.update(lip=s.lip, real=s.real)
                if features:
                    part["features"] = torch.cat([v, a], -1)
                parts.append(part)
        out = {k: torch.cat([p[k] for p in parts]).view(n, -1, *parts[0][k].shape[1:]) for k in parts[0]}
        return WindowScores(mask=window_mask(frame_mask.to(self.device)), **out)

    # ---- offset estimates -------------------------------------------------------------------------------
    @torch.no_grad()
    def audio_by_shift(self, mel: torch.Tensor, n_frames: int, chunk: int = 4096) -> torch.Tensor:
        """audio_feat (S, W, E) of one clip's windows (mel (>= F*T, M)), its audio moved by each shift."""
        mel = mel[:MEL_PER_FRAME * n_frames].to(self.device)
        out = []
        for k in SHIFTS:
            mel_w = mel_windows(mel[None], shift=k)[0]
            out.append(torch.cat([self.backbone.encode_audio(mel_w[lo:lo + chunk]) for lo in range(0, len(mel_w), chunk)]))
        return torch.stack(out)

    @torch.no_grad()
    def mesh_features(self, offsets: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """vertex_feat (W, E) of one sequence's windows (offsets (T, P))."""
        mesh = mesh_windows(offsets[None])[0].to(self.device)
        return torch.cat([self.backbone.encode_mesh(mesh[lo:lo + chunk]) for lo in range(0, len(mesh), chunk)])

    @torch.no_grad()
    def by_shift(self, offsets: torch.Tensor, mel: torch.Tensor, audio: torch.Tensor | None = None,
                 score: str = "sync") -> torch.Tensor:
        """``sync`` (cosine) or ``lip`` (reward models) (S, W) of every window of one sequence with its audio
        moved by each shift, on the CPU. ``audio``: the clip's :meth:`audio_by_shift`, when cached."""
        self.check(offsets, mel)
        v = self.mesh_features(offsets)                                              # (W, E)
        a = self.audio_by_shift(mel, len(offsets)) if audio is None else audio       # (S, W, E)
        if score == "sync":
            return F.cosine_similarity(v[None], a, dim=-1).cpu()
        if self.head is None:
            raise FacerlError("a judge has no lip score")
        return torch.stack([self.head(v, a[i]).lip for i in range(len(a))]).cpu()


class SyncJudge:
    """(sync margin, offset estimate) of sequences by a frozen model's cosine sync; each clip's shifted
    audio features (S, W, E) are computed once and reused for every method and style scored on it."""

    def __init__(self, model: FrozenReward) -> None:
        self.model = model
        self.audio: dict[str, torch.Tensor] = {}

    def __call__(self, clip: str, offsets: torch.Tensor, mel: torch.Tensor) -> tuple[float, int | None]:
        """offsets (T, P), mel (>= F*T, M) of clip ``clip``."""
        self.model.check(offsets, mel)
        key = (clip, len(offsets))
        if key not in self.audio:
            self.audio[key] = self.model.audio_by_shift(mel, len(offsets))
        score = self.model.by_shift(offsets, mel, self.audio[key])
        return sync_margin(score), offset_estimate(score)


def valid_mask(n_windows: int) -> torch.Tensor:
    """(S, W) bool: window w with its audio moved by shift k stays inside the clip."""
    w = torch.arange(n_windows)[None]
    k = torch.tensor(SHIFTS)[:, None]
    return (w + k >= 0) & (w + k < n_windows)


def offset_estimate(score: torch.Tensor) -> int | None:
    """The best-scoring shift (frames) of score (S, W) on the windows valid at every shift; None if the clip
    is too short."""
    common = valid_mask(score.shape[1]).all(0)                                  # (W,)
    if not common.any():
        return None
    return SHIFTS[int(score[:, common].mean(1).argmax())]


def sync_margin(score: torch.Tensor) -> float:
    """Mean score (S, W) of the aligned windows minus their mean score with audio shifted by 2..15 frames
    (SyncNet's confidence, here in cosine units): higher is more in sync, ~0 means no sync seen."""
    far = valid_mask(score.shape[1]) & (torch.tensor(SHIFTS).abs() >= MIN_SHIFT)[:, None]
    return float(score[SHIFTS.index(0)].mean()) - float(score[far].mean())


# ---- loading --------------------------------------------------------------------------------------------
def _load_backbone(path: Path) -> SpeechMeshTransformer:
    ckpt = load_checkpoint(path, REWARD_KIND, keys=("meta", "backbone"))
    with reading_checkpoint(path):
        cfg = to_dataclass(BackboneConfig, ckpt["meta"]["backbone_config"], "reward.")
        backbone = SpeechMeshTransformer(ckpt["meta"]["n_coords"], cfg)
        backbone.load_state_dict(ckpt["backbone"])
    return backbone


def _load_head(path: Path, embed: int, folder: Path) -> ScoreHead:
    ckpt = load_checkpoint(path, REWARD_KIND, keys=("meta", "head"))
    with reading_checkpoint(path):
        if not ckpt["meta"].get("head_trained", True):
            raise FacerlError(f"{folder} holds a judge (backbone only), not a reward model with a score head")
        head = ScoreHead(embed)
        # Checkpoints written before the critic left the reward model carry an (untrained) value MLP: dropped.
        head.load_state_dict({k: v for k, v in ckpt["head"].items() if not k.startswith("value.")})
    return head
