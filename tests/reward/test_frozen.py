"""The frozen reward's batched paths (many sequences at once, each frame embedded once, shifted audio picked
from the clip's own windows) against the plain per-window, per-sequence and per-shift computations.

Dimensions: N sequences, T frames, P coordinates, W windows, S shifts, E embedding, M mel bins.
"""

from __future__ import annotations

import pytest
import torch

from facerl.reward.frozen import (
    SHIFTS,
    FrozenReward,
    SyncJudge,
    all_finite,
    shifted_cosine,
)
from facerl.reward.model import BackboneConfig, ScoreHead, SpeechMeshTransformer
from facerl.reward.windows import (
    MEL_PER_FRAME,
    N_MELS,
    WINDOW,
    mel_windows,
    mesh_windows,
)

N, T, P = 3, 40, 30          # 10 vertices; 36 windows, so some windows are valid at every shift


def tiny(head: bool = True) -> FrozenReward:
    torch.manual_seed(0)
    backbone = SpeechMeshTransformer(P, BackboneConfig(width=16, depth=2, heads=2, embed=24))
    backbone.mesh_scale.copy_(torch.rand(P) * 1e-3 + 1e-4)
    backbone.mel_mean.copy_(torch.randn(N_MELS))
    with torch.no_grad():
        for p in backbone.parameters():  # positions are zeros at init: make every parameter matter
            p.add_(0.1 * torch.randn_like(p))
    return FrozenReward(backbone, ScoreHead(24) if head else None)


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    offsets = 1e-3 * torch.randn(N, T, P, generator=g)                    # (N, T, P)
    mel = torch.randn(N, MEL_PER_FRAME * T, N_MELS, generator=g)           # (N, F*T, M)
    return offsets, mel


def window_features(model: FrozenReward, offsets: torch.Tensor, mel: torch.Tensor):
    """The reference: every window of every sequence through backbone.forward (vertex_feat, audio_feat (N, W, E))."""
    mesh = mesh_windows(offsets).flatten(0, 1)                             # (N*W, L, P)
    v, a = model.backbone(mesh, mel_windows(mel).flatten(0, 1))
    return v.view(len(offsets), -1, v.shape[-1]), a.view(len(offsets), -1, a.shape[-1])


def test_mesh_features_embed_each_frame_once_and_equal_the_window_path():
    model, (offsets, mel) = tiny(), inputs()
    v, _ = window_features(model, offsets, mel)
    torch.testing.assert_close(model.mesh_features(offsets), v)                       # (N, W, E)
    torch.testing.assert_close(model.mesh_features(offsets[1]), v[1])                 # (W, E)
    assert v.shape == (N, T - WINDOW + 1, 24)


def test_batched_score_equals_per_sequence_and_the_window_path():
    model, (offsets, mel) = tiny(), inputs()
    batched = model.score(offsets, mel, features=True)
    v, a = window_features(model, offsets, mel)
    heads = model.head(v.flatten(0, 1), a.flatten(0, 1))
    torch.testing.assert_close(batched.sync, SpeechMeshTransformer.sync(v, a))
    torch.testing.assert_close(batched.lip, heads.lip.view(N, -1))
    torch.testing.assert_close(batched.real, heads.real.view(N, -1))
    torch.testing.assert_close(batched.features, torch.cat([v, a], -1))
    for i in range(N):
        one = model.score(offsets[i], mel[i])
        torch.testing.assert_close(one.reward[0], batched.reward[i])
        torch.testing.assert_close(one.mean(one.reward)[0], batched.mean(batched.reward)[i])


def test_score_with_one_clips_audio_features_equals_scoring_its_mel():
    model, (offsets, mel) = tiny(), inputs()
    same_clip = mel[:1].expand(N, -1, -1)
    plain = model.score(offsets, same_clip)
    shared = model.score(offsets, same_clip, audio=model.audio_features(mel[0], T))
    torch.testing.assert_close(shared.reward, plain.reward)
    torch.testing.assert_close(shared.sync, plain.sync)


def test_audio_by_shift_equals_encoding_every_shifted_window():
    model, (_, mel) = tiny(), inputs()
    with torch.no_grad():
        reference = torch.stack([model.backbone.encode_audio(mel_windows(mel[:1], shift=k)[0]) for k in SHIFTS])
    torch.testing.assert_close(model.audio_by_shift(mel[0], T), reference)           # (S, W, E)


@pytest.mark.parametrize("score", ["sync", "lip"])
def test_by_shift_of_many_sequences_equals_one_at_a_time(score):
    model, (offsets, mel) = tiny(), inputs()
    audio = model.audio_by_shift(mel[0], T)
    many = model.by_shift(offsets, mel[0], audio, score=score)                        # (N, S, W)
    assert many.shape == (N, len(SHIFTS), T - WINDOW + 1)
    for i in range(N):
        torch.testing.assert_close(many[i], model.by_shift(offsets[i], mel[0], score=score))
    v, _ = window_features(model, offsets, mel)
    if score == "sync":  # against the plain definition: cosine of each window with each shifted audio window
        torch.testing.assert_close(many, torch.nn.functional.cosine_similarity(v[:, None], audio[None], dim=-1))


def test_judge_has_no_lip_score_and_sync_judge_uses_the_batched_paths():
    judge, (offsets, mel) = tiny(head=False), inputs()
    with pytest.raises(Exception, match="no lip score"):
        judge.by_shift(offsets, mel[0], score="lip")
    margin, offset = SyncJudge(judge)("clip", offsets[0], mel[0])
    assert isinstance(margin, float) and offset in SHIFTS


def test_score_keeps_the_gradient_to_the_motion():
    model, (offsets, mel) = tiny(), inputs()
    x = offsets.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.score(x, mel, grad=True).reward.sum(), x)
    y = offsets.clone().requires_grad_(True)
    v, a = window_features(model, y, mel)
    s = model.head(v.flatten(0, 1), a.flatten(0, 1))
    (reference,) = torch.autograd.grad((s.lip + s.real).sum(), y)
    torch.testing.assert_close(grad, reference)
    assert not any(p.requires_grad for p in model.parameters())


def test_all_finite():
    x = torch.zeros(4, 5)
    assert all_finite(x) and all_finite(x.double()) and all_finite(x.t()) and all_finite(x.half())
    x[2, 3] = float("nan")
    assert not all_finite(x) and not all_finite(x.t()) and not all_finite(x.half())
    x[2, 3] = float("inf")
    assert not all_finite(x)
    with pytest.raises(Exception, match="NaN or infinite"):
        tiny().score(torch.full((T, P), float("nan")), torch.zeros(MEL_PER_FRAME * T, N_MELS))


def test_shifted_cosine_is_torch_cosine_similarity():
    g = torch.Generator().manual_seed(2)
    v, a = torch.randn(7, 36, 24, generator=g), torch.randn(len(SHIFTS), 36, 24, generator=g)
    v[3, 5] = 0.0                                                  # a zero vector: the eps clamp, as torch's
    expected = torch.stack([torch.nn.functional.cosine_similarity(x[None], a, dim=-1) for x in v])
    torch.testing.assert_close(shifted_cosine(v, a), expected, rtol=0, atol=1e-6)
