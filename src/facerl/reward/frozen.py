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

import numpy as np
import torch
from torch import nn

from facerl.config import to_dataclass
from facerl.errors import FacerlError
from facerl.reward.model import BackboneConfig, ScoreHead, SpeechMeshTransformer
from facerl.reward.windows import (
    MEL_PER_FRAME,
    WINDOW,
    mel_windows,
    mesh_windows,
    reward_mel,
    window_mask,
)
from facerl.utils.checkpoint import load_checkpoint, reading_checkpoint

REWARD_KIND = "facerl-reward"
MAX_SHIFT = 15
SHIFTS = list(range(-MAX_SHIFT, MAX_SHIFT + 1))
MIN_SHIFT = 2      # shifts of at least this many frames count as "out of sync"


def all_finite(x: torch.Tensor) -> bool:
    """``torch.isfinite(x).all()``; through numpy for CPU float tensors, where it is ~20x faster (one pass, no
    float temporaries)."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return bool(np.isfinite(x.detach().numpy()).all())
    return bool(torch.isfinite(x).all())


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
        if not all_finite(offsets):
            raise FacerlError("the motion holds NaN or infinite values")

    def score(self, offsets: torch.Tensor, mel: torch.Tensor, frame_mask: torch.Tensor | None = None, *,
              features: bool = False, grad: bool = False, chunk: int = 4096,
              audio: torch.Tensor | None = None) -> WindowScores:
        """Window scores of N sequences: offsets (N, T, P) or (T, P), mel (N, >= F*T, M), frame_mask (N, T) bool
        (default: all real). ``grad``: keep the graph to the input motion (the perceptual loss). ``audio``: the
        windows' audio features (W, E) from :meth:`audio_features`, when many motions are scored on one clip's
        audio (``mel`` is then only checked)."""
        if offsets.dim() == 2:
            offsets, mel = offsets[None], mel[None]
        self.check(offsets, mel)
        n, t = offsets.shape[:2]
        if frame_mask is None:
            frame_mask = torch.ones(n, t, dtype=torch.bool, device=offsets.device)
        with torch.set_grad_enabled(grad):
            v = self._mesh_features(offsets, chunk)                                  # (N, W, E)
            a = (self._audio_features(mel[:, :MEL_PER_FRAME * t], chunk) if audio is None
                 else audio.to(self.device).expand_as(v))                           # (N, W, E)
            v, a = v.flatten(0, 1), a.flatten(0, 1)                                 # (N*W, E)
            out = {"sync": SpeechMeshTransformer.sync(v, a)}
            if self.head is not None:
                s = self.head(v, a)
                out.update(lip=s.lip, real=s.real)
            if features:
                out["features"] = torch.cat([v, a], -1)
        out = {k: x.view(n, -1, *x.shape[1:]) for k, x in out.items()}
        return WindowScores(mask=window_mask(frame_mask.to(self.device)), **out)

    def _mesh_features(self, offsets: torch.Tensor, chunk: int) -> torch.Tensor:
        """vertex_feat (N, W, E) of every window of offsets (N, T, P): ``backbone.encode_mesh`` of
        :func:`mesh_windows`, with the tower's input layer applied once per frame. That layer maps each token
        (a frame) on its own and dominates the cost (P = V*3 inputs), and every frame sits in L windows, so
        this is L times cheaper than embedding the windows."""
        tower = self.backbone.mesh
        frames = tower.inp(offsets.to(self.device) / self.backbone.mesh_scale)    # (N, T, D)
        tokens = mesh_windows(frames).flatten(0, 1)                               # (N*W, L, D)
        out = [tower.embedded(tokens[lo:lo + chunk]) for lo in range(0, len(tokens), chunk)]  # [(chunk, E)]
        return torch.cat(out).view(len(offsets), -1, out[0].shape[-1])

    def _audio_features(self, mel: torch.Tensor, chunk: int) -> torch.Tensor:
        """audio_feat (N, W, E) of the windows of mel (N, F*T, M)."""
        mel_w = mel_windows(mel.to(self.device)).flatten(0, 1)                  # (N*W, 1, F*L, M)
        out = torch.cat([self.backbone.encode_audio(mel_w[lo:lo + chunk]) for lo in range(0, len(mel_w), chunk)])
        return out.view(len(mel), -1, out.shape[-1])

    # ---- offset estimates -------------------------------------------------------------------------------
    @torch.no_grad()
    def audio_features(self, mel: torch.Tensor, n_frames: int, chunk: int = 4096) -> torch.Tensor:
        """audio_feat (W, E) of one clip's windows (mel (>= F*T, M)), e.g. for :meth:`score` ``audio``."""
        return self._audio_features(mel[None, :MEL_PER_FRAME * n_frames], chunk)[0]

    @torch.no_grad()
    def audio_by_shift(self, mel: torch.Tensor, n_frames: int, chunk: int = 4096) -> torch.Tensor:
        """audio_feat (S, W, E) of one clip's windows (mel (>= F*T, M)), its audio moved by each shift.

        A shifted window is one of the clip's own W windows (:func:`mel_windows` clamps at the edges), so
        the W are encoded once and picked per shift."""
        feats = self.audio_features(mel, n_frames, chunk)                          # (W, E)
        w = torch.arange(len(feats), device=feats.device)
        return feats[(w[None] + torch.tensor(SHIFTS, device=feats.device)[:, None]).clamp(0, len(feats) - 1)]

    @torch.no_grad()
    def mesh_features(self, offsets: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """vertex_feat (W, E) of one sequence's windows (offsets (T, P)), or (N, W, E) of N sequences (N, T, P)."""
        if offsets.dim() == 2:
            return self._mesh_features(offsets[None], chunk)[0]
        return self._mesh_features(offsets, chunk)

    @torch.no_grad()
    def by_shift(self, offsets: torch.Tensor, mel: torch.Tensor, audio: torch.Tensor | None = None,
                 score: str = "sync") -> torch.Tensor:
        """``sync`` (cosine) or ``lip`` (reward models) (S, W) of every window of one sequence (T, P) with its
        audio moved by each shift, on the CPU; (N, S, W) for N sequences (N, T, P) of the same clip (their
        mesh windows are encoded together). ``audio``: the clip's :meth:`audio_by_shift`, when cached."""
        self.check(offsets, mel)
        if score != "sync" and self.head is None:
            raise FacerlError("a judge has no lip score")
        one = offsets.dim() == 2
        v = self.mesh_features(offsets[None] if one else offsets)                    # (N, W, E)
        a = self.audio_by_shift(mel, offsets.shape[-2]) if audio is None else audio  # (S, W, E)
        if score == "sync":
            out = shifted_cosine(v, a)                                               # (N, S, W)
        else:
            out = torch.stack([torch.stack([self.head(x, a[i]).lip for i in range(len(a))]) for x in v])
        return out[0].cpu() if one else out.cpu()


def _unit(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)


def shifted_cosine(vertex_feat: torch.Tensor, audio_feat: torch.Tensor, chunk: int = 4) -> torch.Tensor:
    """Cosine (N, S, W) of N sequences' window features (N, W, E) with a clip's shifted audio features
    (S, W, E): ``F.cosine_similarity(v[n][None], a, dim=-1)`` for every n, the same arithmetic (each side
    divided by its clamped norm, the product summed), with the audio normalised once for all sequences and
    ``chunk`` sequences per operation."""
    audio = _unit(audio_feat)[None]                                                   # (1, S, W, E)
    return torch.cat([(_unit(vertex_feat[lo:lo + chunk])[:, None] * audio).sum(-1)   # (chunk, S, W)
                      for lo in range(0, len(vertex_feat), chunk)])


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
