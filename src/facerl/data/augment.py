"""Training-time speech augmentation, seeded and on the fly, so the actor learns speech rather than
the handful of synthetic voices it hears: speed perturbation (the ground truth is time-warped to match),
spectrum scaling (speaker size: pitch and formants), additive coloured noise at 5-30 dB SNR, synthetic
room reverberation, telephone band-limiting and gain.

Each training clip has ``variants`` augmented versions besides itself; every epoch draws which one a clip
is seen as. A variant is a pure function of (seed, clip, variant), so runs are reproducible and resumes
bit-identical, and a frozen encoder's feature cache keys it by name (``<clip>#aug<k>-<hash>``; the hash covers the
seed, the clip, the variant and every augmentation setting, so a changed recipe is never read back): features of a
variant are computed once, like those of the clean clip.

Dimensions: S audio samples (16 kHz), T frames (30 fps), P = V*3 coordinates, F STFT bins, N STFT frames.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.signal import butter, fftconvolve, istft, sosfilt, stft

from facerl.audio import SAMPLE_RATE, resample
from facerl.errors import FacerlError


@dataclass
class AugmentConfig:
    """Which augmentations, how often and how strong (conf/trainer/supervised.yaml documents each)."""

    variants: int = 0                     # augmented versions per clip (0: augmentation off)
    clean_share: float = 0.25             # share of epochs that use the clean clip
    speed: tuple[float, float] = (0.85, 1.15)      # speaking-rate factor (the ground truth follows)
    formant: tuple[float, float] = (0.85, 1.18)    # frequency scaling: pitch and formants (speaker size)
    noise_prob: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)
    reverb_prob: float = 0.3
    rt60_s: tuple[float, float] = (0.15, 0.7)
    telephone_prob: float = 0.2
    gain_db: tuple[float, float] = (-10.0, 6.0)

    def validate(self) -> None:
        if self.variants < 0 or not 0 <= self.clean_share <= 1:
            raise FacerlError("trainer.augment.variants must be >= 0 and trainer.augment.clean_share in [0, 1]")
        for name in ("speed", "formant", "snr_db", "rt60_s", "gain_db"):
            lo, hi = getattr(self, name)
            if lo > hi or (name in ("speed", "formant", "rt60_s") and lo <= 0):
                raise FacerlError(f"trainer.augment.{name} must be [low, high] with 0 < low <= high")


# ---- single transforms (pure: numpy in, numpy out) --------------------------------------------------------------
def change_speed(audio: np.ndarray, vertices: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Speak ``factor`` times faster: audio (S,) resampled (pitch follows, as in Kaldi-style speed
    perturbation), motion (T, P) linearly re-timed to the new length."""
    n_samples = max(1, round(len(audio) / factor))
    out_audio = resample(audio, round(SAMPLE_RATE * factor), SAMPLE_RATE)[:n_samples]
    n_frames = max(1, round(len(vertices) / factor))
    t = np.linspace(0, len(vertices) - 1, n_frames)
    i0 = np.floor(t).astype(int)
    i1 = np.minimum(i0 + 1, len(vertices) - 1)
    w = (t - i0)[:, None].astype(np.float32)
    return out_audio.astype(np.float32), (vertices[i0] * (1 - w) + vertices[i1] * w).astype(np.float32)


def warp_formants(audio: np.ndarray, alpha: float, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Scale every frequency by ``alpha`` (> 1: a smaller speaker: pitch and formants up together), keeping
    the timing. A phase vocoder: each output bin takes the magnitude at bin k / alpha and that bin's
    instantaneous frequency times alpha, and its phase is accumulated from it frame by frame (copying the
    source phase instead would smear sinusoids into broadband noise). scipy, not torch.stft: this runs per
    clip in the data path, where torch's thread pool only adds overhead."""
    x = np.asarray(audio, np.float32)
    _, _, spec = stft(x, nperseg=n_fft, noverlap=n_fft - hop)                      # (F, N)
    n_bins = spec.shape[0]
    omega = 2 * np.pi * np.arange(n_bins) / n_fft                                   # bin centre, rad / sample
    phase = np.angle(spec)
    dphi = np.diff(phase, axis=1, prepend=phase[:, :1]) - omega[:, None] * hop
    inst = omega[:, None] + (dphi + np.pi) % (2 * np.pi) / hop - np.pi / hop        # (F, N) true frequency
    src = np.arange(n_bins) / alpha                                                  # output bin k reads k / alpha
    lo = np.minimum(np.floor(src).astype(int), n_bins - 1)
    hi = np.minimum(lo + 1, n_bins - 1)
    w = np.clip(src - lo, 0, 1)[:, None]
    mag = (np.abs(spec[lo]) * (1 - w) + np.abs(spec[hi]) * w) * (src < n_bins - 1)[:, None]
    out_phase = np.cumsum(alpha * inst[lo] * hop, axis=1) + phase[lo, :1]
    _, out = istft(mag * np.exp(1j * out_phase), nperseg=n_fft, noverlap=n_fft - hop)
    out = out[: len(x)]
    return np.pad(out, (0, len(x) - len(out))).astype(np.float32)


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Coloured noise (white to brown: spectral slope drawn at random) at ``snr_db`` against the speech."""
    noise = rng.standard_normal(len(audio))
    slope = rng.uniform(0.0, 2.0)  # 0 white, 1 pink, 2 brown (1/f^slope power)
    spectrum = np.fft.rfft(noise)
    f = np.maximum(np.fft.rfftfreq(len(audio)), 1.0 / len(audio))
    noise = np.fft.irfft(spectrum / f ** (slope / 2), len(audio))
    p_speech, p_noise = float(np.mean(audio ** 2)), float(np.mean(noise ** 2))
    if p_speech == 0 or p_noise == 0:
        return audio
    return (audio + noise * np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))).astype(np.float32)


def add_reverb(audio: np.ndarray, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: exponentially decaying noise impulse response (-60 dB at ``rt60_s``) after a direct path."""
    n = int(rt60_s * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)        # ln(1000) = 6.9: -60 dB
    rir[0] = 1.0 / rng.uniform(0.3, 1.0)                            # direct-to-reverberant ratio varies
    wet = fftconvolve(audio, rir / np.sqrt(np.sum(rir ** 2)))[: len(audio)]
    return (wet * np.sqrt(np.mean(audio ** 2) / max(np.mean(wet ** 2), 1e-12))).astype(np.float32)


def telephone(audio: np.ndarray) -> np.ndarray:
    """A telephone channel: 300-3400 Hz band-pass and 8 kHz sampling."""
    sos = butter(6, [300, 3400], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    narrow = sosfilt(sos, audio)
    return resample(resample(narrow.astype(np.float32), SAMPLE_RATE, 8000), 8000, SAMPLE_RATE)[: len(audio)]


# ---- one variant ------------------------------------------------------------------------------------------------
def augment_clip(audio: np.ndarray, vertices: np.ndarray, cfg: AugmentConfig,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """One random augmented version of (audio (S,), motion (T, P)); returns them and what was applied."""
    applied: dict = {}
    factor = round(float(rng.uniform(*cfg.speed)), 2)  # 1/100 steps keep the polyphase resampler small
    audio, vertices = change_speed(audio, vertices, factor)
    applied["speed"] = factor
    alpha = float(rng.uniform(*cfg.formant))
    audio = warp_formants(audio, alpha)
    applied["formant"] = alpha
    if rng.random() < cfg.reverb_prob:
        applied["rt60_s"] = float(rng.uniform(*cfg.rt60_s))
        audio = add_reverb(audio, applied["rt60_s"], rng)
    if rng.random() < cfg.noise_prob:
        applied["snr_db"] = float(rng.uniform(*cfg.snr_db))
        audio = add_noise(audio, applied["snr_db"], rng)
    if rng.random() < cfg.telephone_prob:
        applied["telephone"] = True
        audio = telephone(audio)
    gain = float(rng.uniform(*cfg.gain_db))
    audio = audio * 10 ** (gain / 20)
    applied["gain_db"] = gain
    peak = float(np.abs(audio).max())
    if peak > 1.0:  # keep it a valid signal without changing the SNR
        audio = audio / peak
    return audio.astype(np.float32), vertices, applied


class AugmentedClips(torch.utils.data.Dataset):
    """Training clips, each seen per epoch as itself or one of its ``variants`` (set ``epoch`` each epoch)."""

    def __init__(self, clips: list, cfg: AugmentConfig, seed: int) -> None:
        self.clips, self.cfg, self.seed, self.epoch = clips, cfg, seed, 0

    def __len__(self) -> int:
        return len(self.clips)

    def variant(self, i: int) -> int:
        """0: the clean clip; k >= 1: augmented variant k (a pure function of seed, epoch and clip)."""
        if self.cfg.variants == 0:
            return 0
        rng = np.random.default_rng([self.seed, 17, self.epoch, i])
        return 0 if rng.random() < self.cfg.clean_share else int(rng.integers(1, self.cfg.variants + 1))

    def __getitem__(self, i: int):
        from dataclasses import replace

        clip = self.clips[i]
        k = self.variant(i)
        if k == 0:
            return clip
        rng = np.random.default_rng([self.seed, 29, i, k])
        template = clip.template.numpy()
        audio, motion, _ = augment_clip(clip.audio.numpy(), clip.vertices.numpy() - template, self.cfg, rng)
        # the name keys a frozen encoder's feature cache: it must change whenever the variant's content would
        recipe = hashlib.sha1(json.dumps([self.seed, i, k, asdict(self.cfg)]).encode()).hexdigest()[:10]
        return replace(clip, name=f"{clip.name}#aug{k}-{recipe}", audio=torch.from_numpy(audio),
                       vertices=torch.from_numpy(motion + template), phones=None)
