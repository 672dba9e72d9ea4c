"""Speech augmentation: each transform does what it claims, variants are reproducible, training uses them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerl.audio import SAMPLE_RATE
from facerl.cli import main
from facerl.data.augment import (
    AugmentConfig,
    AugmentedClips,
    add_noise,
    add_reverb,
    change_speed,
    telephone,
    warp_formants,
)
from facerl.data.dataset import Clip
from tests.conftest import tiny_train_overrides


def harmonics(f0: float = 150.0, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return (sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 30)) * 0.1).astype(np.float32)


def peak_hz(x: np.ndarray) -> float:
    """The strongest frequency (the fundamental of :func:`harmonics`), to 1 Hz."""
    return float(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[np.argmax(np.abs(np.fft.rfft(x)))])


def test_speed_changes_audio_and_motion_together():
    audio, motion = harmonics(seconds=2.0), np.linspace(0, 1, 60)[:, None].repeat(6, 1).astype(np.float32)
    fast_audio, fast_motion = change_speed(audio, motion, 1.25)
    assert len(fast_audio) == pytest.approx(len(audio) / 1.25, abs=2)
    assert len(fast_motion) == 48 and fast_motion[0, 0] == 0 and fast_motion[-1, 0] == pytest.approx(1)
    assert np.all(np.diff(fast_motion[:, 0]) > 0)                         # still a monotone ramp
    assert peak_hz(fast_audio) == pytest.approx(1.25 * 150, abs=1)            # pitch follows the rate


def test_formant_warp_moves_the_spectrum_and_keeps_the_timing():
    audio = harmonics()
    assert np.abs(warp_formants(audio, 1.0) - audio).max() < 1e-4
    up, down = warp_formants(audio, 1.2), warp_formants(audio, 0.85)
    assert len(up) == len(down) == len(audio)
    assert peak_hz(up) == pytest.approx(180, abs=2) and peak_hz(down) == pytest.approx(127.5, abs=2)


def test_noise_reverb_telephone():
    audio, rng = harmonics(), np.random.default_rng(0)
    noisy = add_noise(audio, 10.0, rng)
    snr = 10 * np.log10(np.mean(audio ** 2) / np.mean((noisy - audio) ** 2))
    assert snr == pytest.approx(10.0, abs=0.1)
    wet = add_reverb(audio, 0.5, rng)
    assert np.sqrt(np.mean(wet ** 2)) == pytest.approx(np.sqrt(np.mean(audio ** 2)), rel=1e-3)
    assert not np.allclose(wet, audio)
    phone = telephone(audio)
    power, f = np.abs(np.fft.rfft(phone)) ** 2, np.fft.rfftfreq(len(phone), 1 / SAMPLE_RATE)
    assert power[f > 4200].sum() < 1e-3 * power.sum() and power[f < 200].sum() < 1e-2 * power.sum()


def test_variants_are_reproducible_and_named():
    clips = [Clip(f"S_sentence{i:02d}", "S", torch.from_numpy(harmonics()), torch.zeros(30, 9), torch.zeros(9), 0)
             for i in range(1, 9)]
    cfg = AugmentConfig(variants=3, clean_share=0.25)
    a, b = AugmentedClips(clips, cfg, seed=5), AugmentedClips(clips, cfg, seed=5)
    for epoch in (1, 2):
        a.epoch = b.epoch = epoch
        for i in range(len(clips)):
            x, y = a[i], b[i]
            assert x.name == y.name and torch.equal(x.audio, y.audio) and torch.equal(x.vertices, y.vertices)
    seen = {a.variant(i) for a.epoch in range(1, 30) for i in range(len(clips))}
    assert seen == {0, 1, 2, 3}
    a.epoch = next(e for e in range(1, 30) if a.variant(0) > 0)
    augmented = a[0]
    assert augmented.name.startswith("S_sentence01#aug")
    assert augmented.audio.shape != clips[0].audio.shape or not torch.equal(augmented.audio, clips[0].audio)
    assert AugmentedClips(clips, AugmentConfig(), seed=5)[3] is clips[3]      # off: the clean clip itself


def test_training_with_augmentation_runs(tiny_corpus, tmp_path, capsys):
    args = tiny_train_overrides(tiny_corpus, tmp_path, "trainer.epochs=1", "trainer.augment.variants=2")
    assert main(["train", *args]) == 0
    ckpt = torch.load(tmp_path / "runs" / "t" / "actor" / "last.pt", weights_only=True)
    assert ckpt["config"]["trainer"]["augment"]["variants"] == 2
    assert main(["train", *tiny_train_overrides(tiny_corpus, tmp_path, "trainer.augment.speed=[1.2,1.0]")]) == 2
    assert "trainer.augment.speed" in capsys.readouterr().err
