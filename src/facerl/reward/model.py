"""Reward model architecture: the SpeechMeshTransformer sync backbone and the lip / real score head.

Dimensions: B windows, L frames per window (5), P = V*3 coordinates, F*L mel frames (20), M mel bins
(128), D tower width, E embedding size (512).

Each video frame of a mesh window is one token (a linear map of its motion, each coordinate divided by
its training scale): five tokens are enough for a transformer to see the opening/closing dynamics, and
tokens per frame keep the tower independent of the mesh topology (VOCASET's 5,023 vertices or our
4,784) except for its first layer. The audio window is tokenised the same way, one token per video
frame made of its 4 mel frames (a patch): 4x fewer tokens than one per mel frame, so the audio tower,
which also encodes every hard negative, costs a quarter. Both towers flatten their tokens (order matters
for sync) and project to E; sync is their cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facerl.reward.windows import MEL_PER_FRAME, N_MELS, WINDOW

MESH_FLOOR_M = 1e-4  # 0.1 mm: the smallest per-coordinate scale of the mesh input


@dataclass
class BackboneConfig:
    """Sizes of the SpeechMeshTransformer (CPU-sized defaults)."""

    width: int = 128       # D of both towers
    depth: int = 2         # transformer layers per tower
    heads: int = 4
    embed: int = 512       # E: vertex_feat / audio_feat size
    dropout: float = 0.1


class _Tower(nn.Module):
    """Tokens (B, N, in) -> linear -> + learned positions -> pre-norm transformer -> flatten -> (B, E).

    Flattening (not mean-pooling) keeps the order of the tokens, which is what sync is about."""

    def __init__(self, n_in: int, n_tokens: int, cfg: BackboneConfig) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, cfg.width)
        self.pos = nn.Parameter(torch.zeros(n_tokens, cfg.width))
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, 2 * cfg.width, cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)
        self.out = nn.Linear(n_tokens * cfg.width, cfg.embed)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embedded(self.inp(tokens))

    def embedded(self, x: torch.Tensor) -> torch.Tensor:
        """The tower after its input layer: tokens already mapped by ``inp`` (B, N, D) -> (B, E). ``inp`` maps
        each token on its own, so callers with overlapping windows can apply it once per token."""
        x = self.encoder(x + self.pos)                                        # (B, N, D)
        return self.out(self.norm(x).flatten(1))                              # (B, N*D) -> (B, E)


class SpeechMeshTransformer(nn.Module):
    """mesh clip (B, L, P) motion in metres + mel clip (B, 1, F*L, M) -> vertex_feat, audio_feat (B, E)."""

    def __init__(self, n_coords: int, cfg: BackboneConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or BackboneConfig()
        self.n_coords = n_coords
        self.mesh = _Tower(n_coords, WINDOW, self.cfg)
        self.audio = _Tower(MEL_PER_FRAME * N_MELS, WINDOW, self.cfg)
        # Per-coordinate scale of the training motion (floored at MESH_FLOOR_M): still vertices stay still
        # in training data, so noise on them stands out instead of drowning in the lips' millimetres.
        self.register_buffer("mesh_scale", torch.full((n_coords,), MESH_FLOOR_M))
        # Per-bin statistics of the training log-mel (raw log-mel has mean ~-4, std ~4): fitted once by the
        # trainer, saved with the weights. Without them the audio tower barely learned (val sync 51 %).
        self.register_buffer("mel_mean", torch.zeros(N_MELS))
        self.register_buffer("mel_std", torch.ones(N_MELS))

    def set_input_stats(self, motion: torch.Tensor, mel: torch.Tensor) -> None:
        """Fit the input normalisation to training motion frames (N, P) and log-mel frames (N', M)."""
        self.mesh_scale.copy_(motion.std(0).clamp_min(MESH_FLOOR_M))
        self.mel_mean.copy_(mel.mean(0))
        self.mel_std.copy_(mel.std(0).clamp_min(1e-3))

    def encode_mesh(self, mesh: torch.Tensor) -> torch.Tensor:
        """(B, L, P) motion in metres from the template -> vertex_feat (B, E)."""
        return self.mesh(mesh / self.mesh_scale)

    def encode_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, 1, F*L, M) raw log-mel -> audio_feat (B, E); one token per video frame (its F mel frames)."""
        b, _, n, m = mel.shape
        x = (mel[:, 0] - self.mel_mean) / self.mel_std                       # (B, F*L, M)
        return self.audio(x.reshape(b, n // MEL_PER_FRAME, MEL_PER_FRAME * m))  # (B, L, F*M) -> (B, E)

    def forward(self, mesh: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_mesh(mesh), self.encode_audio(mel)

    @staticmethod
    def sync(vertex_feat: torch.Tensor, audio_feat: torch.Tensor) -> torch.Tensor:
        """Cosine similarity (B,) of paired features: the backbone's own sync score."""
        return F.cosine_similarity(vertex_feat, audio_feat, dim=-1)


@dataclass
class Scores:
    lip: torch.Tensor        # (B,) sigmoid: mesh and audio are in sync
    real: torch.Tensor       # (B,) sigmoid: the motion looks like real (ground-truth) motion
    lip_logit: torch.Tensor
    real_logit: torch.Tensor


class ScoreHead(nn.Module):
    """concat(vertex_feat, audio_feat) (B, 2E) -> lip and real from a shared trunk. RL's critic is not
    here: it is the RL run's own model (facerl.rl.critic), so the reward stays exactly as calibrated."""

    def __init__(self, embed: int = 512, hidden: int = 256) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(2 * embed, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.lip, self.real = nn.Linear(hidden, 1), nn.Linear(hidden, 1)

    def forward(self, vertex_feat: torch.Tensor, audio_feat: torch.Tensor) -> Scores:
        x = torch.cat([vertex_feat, audio_feat], -1)                          # (B, 2E)
        h = self.trunk(x)                                                     # (B, hidden)
        lip, real = self.lip(h)[:, 0], self.real(h)[:, 0]
        return Scores(torch.sigmoid(lip), torch.sigmoid(real), lip, real)


def sync_contrastive_loss(vertex_feat: torch.Tensor, audio_feat: torch.Tensor, hard_audio: torch.Tensor | None,
                          temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE for sync: each mesh window must pick its own audio among the batch's audio (other clips,
    other speakers) and its K hard negatives (the same clip's audio shifted), and each audio window its
    own mesh among the batch's meshes (symmetric, as CLIP).

    vertex_feat, audio_feat (B, E) aligned pairs; hard_audio (B, K, E) or None.
    """
    v, a = F.normalize(vertex_feat, dim=-1), F.normalize(audio_feat, dim=-1)
    logits = v @ a.T / temperature                                            # (B, B), positives on the diagonal
    target = torch.arange(len(v), device=v.device)
    if hard_audio is not None:
        hard = torch.einsum("be,bke->bk", v, F.normalize(hard_audio, dim=-1)) / temperature   # (B, K)
        mesh_to_audio = F.cross_entropy(torch.cat([logits, hard], 1), target)
    else:
        mesh_to_audio = F.cross_entropy(logits, target)
    return 0.5 * (mesh_to_audio + F.cross_entropy(logits.T, target))
