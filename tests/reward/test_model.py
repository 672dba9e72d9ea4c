"""Reward-model building blocks: window alignment, backbone shapes, score head range, contrastive loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from facerl.reward.model import (
    BackboneConfig,
    ScoreHead,
    SpeechMeshTransformer,
    sync_contrastive_loss,
)
from facerl.reward.windows import mel_windows, mesh_windows, reward_mel, window_mask


def test_reward_mel_has_four_frames_per_video_frame_and_128_bins():
    tone = torch.sin(2 * math.pi * 500 * torch.arange(16000) / 16000)[None]   # 1 s
    mel = reward_mel(tone, n_frames=30)
    assert mel.shape == (1, 120, 128) and torch.isfinite(mel).all()


def test_mesh_and_mel_windows_cover_the_same_time():
    motion = torch.arange(8.0)[None, :, None].expand(2, 8, 3)                # frame index as value
    mel = torch.arange(32.0)[None, :, None].expand(2, 32, 128)              # mel frame index as value
    mw, aw = mesh_windows(motion), mel_windows(mel)
    assert mw.shape == (2, 4, 5, 3) and aw.shape == (2, 4, 1, 20, 128)
    assert mw[0, 2, :, 0].tolist() == [2, 3, 4, 5, 6]
    assert aw[0, 2, 0, :, 0].tolist() == list(range(8, 28))                # frames 2..6 -> mel 8..27
    shifted = mel_windows(mel, shift=1)
    assert shifted[0, 0, 0, 0, 0] == 4 and shifted[0, 3, 0, 0, 0] == 12      # the last window is clamped
    mask = window_mask(torch.tensor([[True] * 6 + [False] * 2]))
    assert mask.tolist() == [[True, True, False, False]]


def test_backbone_and_head_shapes_and_ranges():
    torch.manual_seed(0)
    backbone = SpeechMeshTransformer(30, BackboneConfig(width=32, depth=1, embed=64)).eval()
    head = ScoreHead(embed=64, hidden=32)
    mesh, mel = torch.randn(6, 5, 30) * 1e-3, torch.randn(6, 1, 20, 128)
    v, a = backbone(mesh, mel)
    assert v.shape == a.shape == (6, 64)
    scores = head(v, a)
    assert scores.lip.shape == (6,) and torch.all((scores.lip > 0) & (scores.lip < 1))
    assert torch.all((scores.real > 0) & (scores.real < 1)) and not hasattr(scores, "value")
    assert SpeechMeshTransformer.sync(v, a).abs().max() <= 1.0 + 1e-6


def test_contrastive_loss_hand_computed_and_hard_negatives_raise_it():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # logits = I / 0.5: each row softmax over [2, 0] -> loss = log(1 + e^-2)
    expected = math.log(1 + math.exp(-2.0))
    assert sync_contrastive_loss(v, a, None, temperature=0.5).item() == pytest.approx(expected, rel=1e-5)
    hard = torch.tensor([[[1.0, 0.1]], [[0.1, 1.0]]])                        # near-copies of the positives
    assert sync_contrastive_loss(v, a, hard, temperature=0.5) > expected


def test_backbone_learns_toy_sync():
    """Meshes whose motion copies the audio energy: a few steps of the loss must separate aligned pairs."""
    torch.manual_seed(0)
    backbone = SpeechMeshTransformer(3, BackboneConfig(width=32, depth=1, embed=32, dropout=0.0))
    opt = torch.optim.Adam(backbone.parameters(), lr=3e-3)
    energy = torch.rand(64, 20)                                              # per mel frame
    mel = energy[:, None, :, None].expand(64, 1, 20, 128).contiguous()
    mesh = energy.view(64, 5, 4).mean(-1)[..., None].expand(64, 5, 3) * 1e-2  # mouth opening follows energy
    first = None
    for _ in range(60):
        v, a = backbone(mesh, mel)
        loss = sync_contrastive_loss(v, a, None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    v, a = backbone(mesh, mel)
    sims = F.normalize(v, dim=-1) @ F.normalize(a, dim=-1).T
    assert loss.item() < 0.5 * first
    assert (sims.argmax(1) == torch.arange(64)).float().mean() > 0.5
