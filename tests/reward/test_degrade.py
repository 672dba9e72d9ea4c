"""Degradations keep shape and change motion in the way their names say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerl.reward.degrade import (
    DEGRADATIONS,
    damp,
    degrade,
    freeze,
    jitter,
    oversmooth,
    time_warp,
    tremble,
)


def bumpy(t: int = 60) -> torch.Tensor:
    x = torch.arange(t, dtype=torch.float32)
    return torch.stack([torch.sin(x * 0.7), torch.cos(x * 0.3)], 1) * 5e-3     # (T, 2) metres


def speed(m: torch.Tensor) -> float:
    return float((m[1:] - m[:-1]).abs().mean())


def test_oversmooth_lowers_speed_and_damp_scales():
    m = bumpy()
    assert speed(oversmooth(m, 3.0)) < 0.5 * speed(m)
    assert torch.allclose(damp(m, 0.5), m * 0.5)


def test_jitter_adds_noise_of_the_given_size():
    m = bumpy(2000)
    noisy = jitter(m, np.random.default_rng(0), 1e-3)
    assert abs(float((noisy - m).std()) - 1e-3) < 1e-4


def test_freeze_holds_frames_for_the_span():
    m = bumpy(20)
    held = freeze(m, np.random.default_rng(1), span=4)
    changes = int((held[1:] != held[:-1]).any(1).sum())
    assert changes <= 20 // 4 + 1 and held.shape == m.shape


def test_time_warp_keeps_the_ends_and_moves_the_middle():
    m = bumpy()
    warped = time_warp(m, np.random.default_rng(2), 0.3)
    assert torch.allclose(warped[0], m[0]) and torch.allclose(warped[-1], m[-1], atol=1e-6)
    assert (warped - m).abs().max() > 1e-3


@pytest.mark.parametrize("kind", DEGRADATIONS)
def test_every_degradation_changes_motion_and_keeps_shape(kind):
    m = bumpy()
    out = degrade(m, kind, np.random.default_rng(0))
    assert out.shape == m.shape and out.dtype == m.dtype and not torch.allclose(out, m)


def test_unknown_degradation_is_refused():
    with pytest.raises(ValueError):
        degrade(bumpy(), "sideways", np.random.default_rng(0))


def test_oversmooth_is_a_gaussian_filter_with_held_edges():
    from scipy.ndimage import gaussian_filter1d

    m = bumpy(40)
    for sigma in (1.0, 2.5, 4.0):
        expected = gaussian_filter1d(m.double().numpy(), sigma, axis=0, mode="nearest")
        assert np.allclose(oversmooth(m, sigma).numpy(), expected, atol=1e-6)


def test_tremble_is_white_in_time_and_moves_only_what_moves():
    m = torch.cat([bumpy(400), torch.zeros(400, 1)], 1)                   # a third coordinate never moves
    shaken = tremble(m, np.random.default_rng(3), 0.3)
    noise = shaken - m
    assert torch.all(noise[:, 2] == 0) and noise[:, :2].std() > 0.1 * m[:, :2].std()
    lag1 = float((noise[1:, 0] * noise[:-1, 0]).sum() / (noise[:, 0] ** 2).sum())
    assert abs(lag1) < 0.15                                                  # white in time, unlike the motion
