"""The FaceFormer actor: attention biases, masks, motion space, KV cache == full prefix, policy, no length limit."""

from __future__ import annotations

import math

import pytest
import torch

from facerl.models.actor import (
    Actor,
    ActorConfig,
    MotionSpace,
    alibi_slopes,
    alignment_mask,
    periodic_bias,
    periodic_encoding,
)
from facerl.models.audio import (
    AudioEncoderConfig,
    align_to_frames,
    log_mel,
    mel_filterbank,
)
from facerl.train.losses import masked_mse, velocity_mse

V = 50  # vertices of the toy meshes


def tiny_actor(layers: int = 2, motion: MotionSpace | None = None, styles: int = 3) -> Actor:
    torch.manual_seed(0)
    cfg = ActorConfig(width=32, heads=4, layers=layers, period=30,
                      audio=AudioEncoderConfig(width=32, layers=1, n_mels=40, dropout=0.0))
    actor = Actor(cfg, V, styles, motion)
    torch.nn.init.normal_(actor.head.weight, std=0.2)  # the real head starts at zero; make outputs move
    return actor.eval()


def test_alibi_slopes_follow_the_geometric_rule():
    assert alibi_slopes(4).tolist() == [0.25, 0.0625, 0.015625, 0.00390625]
    six = alibi_slopes(6)
    assert len(six) == 6 and torch.all(six > 0) and six[0] == 0.25


def test_periodic_bias_steps_once_per_period_and_is_causal():
    slopes = torch.tensor([0.5, 0.25])
    pos = torch.arange(5)
    bias = periodic_bias(pos, pos, slopes, period=2)  # (H, 5, 5)
    assert bias[0, 4, 4] == 0 and bias[0, 4, 3] == 0           # distance 0, 1 -> floor(d/2) = 0
    assert bias[0, 4, 2] == -0.5 and bias[0, 4, 1] == -0.5     # distance 2, 3 -> 1 step
    assert bias[0, 4, 0] == -1.0 and bias[1, 4, 0] == -0.5     # distance 4 -> 2 steps, head slope
    assert math.isinf(bias[0, 1, 2]) and bias[0, 1, 2] < 0     # the future is masked


def test_alignment_mask_is_diagonal_and_clamps_past_the_audio():
    mask = alignment_mask(torch.arange(4), n_audio=3)          # (4, 3)
    allowed = torch.isfinite(mask)
    assert allowed[:3].equal(torch.eye(3, dtype=torch.bool))
    assert allowed[3].tolist() == [False, False, True]


def test_periodic_encoding_repeats_with_the_period():
    pe = periodic_encoding(torch.arange(70), 16, period=30)
    assert torch.allclose(pe[5], pe[35]) and torch.allclose(pe[5], pe[65])
    assert not torch.allclose(pe[5], pe[6])


def test_fresh_actor_outputs_the_template():
    torch.manual_seed(1)
    actor = Actor(ActorConfig(width=32, audio=AudioEncoderConfig(width=32, layers=1, n_mels=40)), V, 2).eval()
    audio = torch.randn(1, 16000)
    feats = actor.encode_audio(audio, torch.ones_like(audio, dtype=torch.bool), 30)
    template = torch.randn(1, V * 3)
    verts = actor.vertices(actor.generate(feats, torch.tensor([0])).motion, template)
    assert torch.equal(verts, template[:, None].expand_as(verts))   # zero-initialised head


@pytest.mark.parametrize("stochastic", [False, True])
def test_kv_cache_equals_the_full_prefix_loop(stochastic):
    actor = tiny_actor(layers=2)
    audio = torch.randn(2, 16000 * 3)
    with torch.no_grad():
        feats = actor.encode_audio(audio, torch.ones_like(audio, dtype=torch.bool), 75)  # 2.5 periods
        style = torch.tensor([1, -1])
        cached = actor.generate(feats, style, stochastic=stochastic, generator=torch.Generator().manual_seed(3))
        full = actor.generate(feats, style, stochastic=stochastic, cache=False,
                              generator=torch.Generator().manual_seed(3))
    assert cached.motion.abs().max() > 1e-2                     # outputs really move
    assert (cached.motion - full.motion).abs().max() <= 1e-5
    assert (cached.mean - full.mean).abs().max() <= 1e-5


def test_teacher_forced_pass_reproduces_the_rollout_means():
    """One parallel pass over a rollout gives the policy's means along it: how RL gets log-probs with gradient."""
    actor = tiny_actor()
    audio = torch.randn(1, 16000 * 2)
    with torch.no_grad():
        feats = actor.encode_audio(audio, torch.ones_like(audio, dtype=torch.bool), 60)
        roll = actor.generate(feats, torch.tensor([2]), stochastic=True, generator=torch.Generator().manual_seed(0))
        means = actor(feats, torch.tensor([2]), roll.motion)
    assert (means - roll.mean).abs().max() <= 1e-5
    assert (roll.motion - roll.mean).abs().max() > 0.05         # samples differ from the means


def test_log_prob_is_the_diagonal_normal_density():
    actor = tiny_actor()
    mean = torch.zeros(1, 2, actor.motion.dim)
    sample = torch.full_like(mean, 0.5)
    std = math.exp(actor.cfg.init_log_std)
    expected = actor.motion.dim * (-0.5 * (0.5 / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi))
    lp = actor.log_prob(mean, sample)
    assert lp.shape == (1, 2) and torch.allclose(lp, torch.full((1, 2), expected), rtol=1e-5)


def test_average_style_is_the_mean_one_hot():
    actor = tiny_actor(styles=4)
    vec = actor.style_vector(torch.tensor([2, -1]))
    assert vec[0].tolist() == [0, 0, 1, 0] and torch.allclose(vec[1], torch.full((4,), 0.25))


def test_generation_has_no_length_limit():
    actor = tiny_actor(layers=1)
    feats = torch.randn(1, 700, actor.audio_encoder.feature_dim)  # 23 s, past FaceFormer's 600-frame table
    with torch.no_grad():
        out = actor.generate(feats, torch.tensor([0]))
    assert out.motion.shape == (1, 700, actor.motion.dim) and torch.isfinite(out.motion).all()


def test_motion_space_fit_finds_the_rank_and_round_trips():
    torch.manual_seed(0)
    offsets = torch.randn(400, 5) @ torch.randn(5, V * 3)                 # rank-5 motion
    space = MotionSpace.fit(offsets, dim=16)
    assert space.dim == 5
    coeffs = space.encode(offsets)
    assert torch.allclose(space.decode(coeffs), offsets, atol=1e-4)
    assert torch.allclose(coeffs.pow(2).mean(0), torch.ones(5), atol=1e-3)   # unit variance per axis


def test_weighted_coefficient_mse_equals_vertex_mse_up_to_the_out_of_span_constant():
    torch.manual_seed(0)
    space = MotionSpace.fit(torch.randn(300, 4) @ torch.randn(4, V * 3), dim=4)
    target = torch.randn(2, 6, V * 3) * 0.5                                 # not in the span
    pred_a, pred_b = torch.randn(2, 6, 4), torch.randn(2, 6, 4)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    t = space.encode(target)
    w = space.mse_weights()
    vertex = [masked_mse(space.decode(p), target, mask) for p in (pred_a, pred_b)]
    coeff = [masked_mse(p, t, mask, w) for p in (pred_a, pred_b)]
    assert torch.allclose(vertex[0] - vertex[1], coeff[0] - coeff[1], rtol=1e-4)
    vel_v = [velocity_mse(space.decode(p), space.decode(t), mask) for p in (pred_a, pred_b)]
    vel_c = [velocity_mse(p, t, mask, w) for p in (pred_a, pred_b)]
    assert torch.allclose(torch.stack(vel_v), torch.stack(vel_c), rtol=1e-4)


def test_masked_mse_ignores_padding():
    pred, target = torch.zeros(1, 3, 2), torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert masked_mse(pred, target, mask).item() == pytest.approx((1 + 9) / 2)
    assert velocity_mse(pred, target, mask).item() == pytest.approx(4.0)     # only the (0, 1) pair: diff 2


def test_mel_front_end_and_time_alignment():
    fb = mel_filterbank(400, 40)
    assert fb.shape == (201, 40) and torch.all(fb >= 0) and torch.all(fb.max(0).values > 0.5)
    tone = torch.sin(2 * math.pi * 1000 * torch.arange(16000) / 16000)[None]
    mel = log_mel(tone, n_mels=40)
    assert mel.shape == (1, 101, 40)
    centres = torch.argmax(fb, dim=0)                                    # FFT bin at each filter's peak
    assert abs(int(centres[mel[0, 50].argmax()]) * 40 - 1000) <= 120      # loudest band holds 1 kHz
    feats = torch.arange(10.0)[None, :, None]                            # value = index at 100 Hz
    aligned = align_to_frames(feats, 100.0, 4)                            # frames at 0, 1/30, 2/30, 3/30 s
    assert torch.allclose(aligned[0, :3, 0], torch.tensor([0.0, 10 / 3, 20 / 3]), atol=1e-5)
    assert aligned[0, 3, 0] == 9.0                                        # beyond the last feature: clamped
