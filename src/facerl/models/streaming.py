"""An audio encoder with bounded look-ahead (``model.audio.kind=stream``), so the actor can animate live audio.

Dimensions: B batch, S audio samples (16 kHz), F mel frames (100 Hz), N encoder positions (50 Hz), C positions
per chunk, M mel bins, D feature width, T motion frames (30 fps).

Every stage is causal or chunk-local, so a feature depends on the past and on at most one chunk ahead:

* log-mel from windows that *end* at their frame (25 ms, 10 ms hop; no centring, so no look-ahead);
* two causal convolutions (left padding only; the second strides 100 -> 50 Hz);
* a transformer whose attention is chunked (Zhang et al. 2020, "Transformer transducer", and the chunked
  attention of streaming ASR): a position sees its own chunk and ``context_chunks`` chunks before it, never
  the next chunk. No absolute positions (the convolutions carry local order), so any stretch of audio
  encodes the same wherever it starts.

The look-ahead of motion frame i (time i / 30 s) is the audio needed past that time: up to the end of the
chunk of the 50 Hz position its features interpolate from. :meth:`StreamingMelEncoder.needed_samples` gives
it exactly; ``lookahead_ms`` is its maximum. :mod:`facerl.stream` computes chunks as their audio arrives
and equals :meth:`StreamingMelEncoder.forward` on the whole clip (tested to 1e-5).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facerl.audio import SAMPLE_RATE
from facerl.errors import FacerlError
from facerl.models.audio import (
    MOTION_FPS,
    AudioEncoder,
    AudioEncoderConfig,
    _cached_filterbank,
)

HOP = SAMPLE_RATE // 100          # 160 samples: 100 Hz mel frames
N_FFT = 400                       # 25 ms windows
STRIDE = 2                        # 100 Hz mel -> 50 Hz features
POSITION_SAMPLES = HOP * STRIDE   # 320 samples (20 ms) per encoder position


def causal_log_mel(audio: torch.Tensor, n_mels: int) -> torch.Tensor:
    """(B, S) -> (B, S // HOP, M) log-mel; frame f covers samples [(f + 1) HOP - N_FFT, (f + 1) HOP), zeros before 0."""
    padded = F.pad(audio, (N_FFT - HOP, 0))
    window = torch.hann_window(N_FFT, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(padded, n_fft=N_FFT, hop_length=HOP, window=window, center=False,
                      return_complex=True)                                   # (B, N_FFT//2+1, F)
    power = spec.real ** 2 + spec.imag ** 2
    fb = _cached_filterbank(N_FFT, n_mels).to(audio.device, audio.dtype)    # (N_FFT//2+1, M)
    return torch.log(power.transpose(1, 2) @ fb + 1e-6)[:, : audio.shape[1] // HOP]


def chunk_mask(n: int, chunk: int, context_chunks: int, device=None) -> torch.Tensor:
    """(N, N) bool attention mask, True = blocked: position q sees chunks [c(q) - context, c(q)] only."""
    c = torch.arange(n, device=device) // chunk
    diff = c[:, None] - c[None, :]                                           # (N, N) query chunk - key chunk
    return (diff < 0) | (diff > context_chunks)


class ChunkedStream:
    """The chunk arithmetic every streaming encoder shares (``self.chunk``: positions per chunk, 50 Hz): a chunk's
    features need its own audio and the past, so motion frame i waits for the end of its position's chunk."""

    chunk: int
    streams = True

    def align(self, features: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Frame i takes position floor(i * 50 / 30) (no interpolation, so no extra look-ahead); frames past the
        audio repeat the last position."""
        return features[:, self.positions(n_frames, features.shape[1])]

    @staticmethod
    def position_of(frame: int) -> int:
        """The 50 Hz position whose features motion frame ``frame`` takes: floor(frame * 50 / 30)."""
        return frame * int(SAMPLE_RATE / POSITION_SAMPLES) // MOTION_FPS

    @staticmethod
    def positions(n_frames: int, n_positions: int) -> torch.Tensor:
        """The 50 Hz position of each motion frame (T,), clamped to the positions there are."""
        pos = torch.div(torch.arange(n_frames) * int(SAMPLE_RATE / POSITION_SAMPLES), MOTION_FPS, rounding_mode="floor")
        return pos.clamp(max=max(n_positions - 1, 0))

    def needed_samples(self, frame: int) -> int:
        """Audio samples that must have arrived before motion frame ``frame`` can be computed."""
        pos = self.position_of(frame)
        chunk_end = (pos // self.chunk + 1) * self.chunk                     # positions up to the chunk's end
        return chunk_end * POSITION_SAMPLES

    @property
    def lookahead_ms(self) -> float:
        """The longest wait past a frame's own time for the audio it needs (over a cycle of 3 frames / chunks)."""
        frames = range(3 * self.chunk * MOTION_FPS)
        return max(1000 * (self.needed_samples(i) / SAMPLE_RATE - i / MOTION_FPS) for i in frames)


class StreamingMelEncoder(ChunkedStream, AudioEncoder):
    """Causal log-mel -> causal convolutions -> chunked transformer; trained from scratch with the actor."""

    def __init__(self, cfg: AudioEncoderConfig) -> None:
        super().__init__()
        opts = {"lookahead_ms": 60.0, "context_ms": 1000.0, **(cfg.extra or {})}
        self.chunk = max(1, round(float(opts["lookahead_ms"]) / (1000 * POSITION_SAMPLES / SAMPLE_RATE)))
        self.context_chunks = max(0, math.ceil(float(opts["context_ms"]) / (20.0 * self.chunk)))
        if self.chunk > 50:
            raise FacerlError(f"model.audio.extra.lookahead_ms={opts['lookahead_ms']} is over 1 s; a streaming "
                              "encoder is for short look-ahead")
        self.n_mels, self.layers = cfg.n_mels, cfg.layers
        self.rate_hz, self.feature_dim = SAMPLE_RATE / POSITION_SAMPLES, cfg.width
        self.norm = nn.LayerNorm(cfg.n_mels)
        self.conv1 = nn.Conv1d(cfg.n_mels, cfg.width, kernel_size=3)                # causal: left pad 2
        self.conv2 = nn.Conv1d(cfg.width, cfg.width, kernel_size=4, stride=STRIDE)  # causal: left pad 2
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, dim_feedforward=2 * cfg.width,
                                           dropout=cfg.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False) if cfg.layers else None

    # ---- the whole clip (training, offline inference) ---------------------------------------------------
    def features(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        """(B, S), (B, S) -> (B, N, D) at 50 Hz, N = S // 320 (a trailing partial position is dropped)."""
        x = self._conv(causal_log_mel(audio, self.n_mels))                  # (B, N, D)
        if self.encoder is None:
            return x
        # No padding mask: padding sits at the end and no position sees a later chunk, so padding changes only
        # the clip's last chunk (which also holds padded positions), as it would change a streamed clip's end.
        return self.encoder(x, mask=chunk_mask(x.shape[1], self.chunk, self.context_chunks, x.device))

    def _conv(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, F, M) log-mel -> (B, F // 2, D): position p depends on mel frames <= 2p + 1."""
        x = self.norm(mel).transpose(1, 2)                                   # (B, M, F)
        x = F.gelu(self.conv1(F.pad(x, (2, 0))))                            # (B, D, F)
        x = F.gelu(self.conv2(F.pad(x, (2, 0))))                            # (B, D, F // 2)
        return x.transpose(1, 2)

    def stream_state(self) -> ChunkEncoder:
        """The per-stream incremental encoder :mod:`facerl.stream` feeds chunk by chunk."""
        return ChunkEncoder(self)


class ChunkEncoder:
    """The incremental form of :meth:`StreamingMelEncoder.features` for one live stream: each call encodes one
    new chunk of positions, and each layer keeps the keys and values of the chunks later ones attend to, so a
    chunk costs its own positions only (the whole-receptive-field re-encoding it replaces cost ~35x more).

    The front end (log-mel and convolutions) runs on the chunk's audio plus ``MARGIN`` positions before it:
    position p depends on samples from 320 p - 880 on (the 25 ms window, conv1's 3 taps, conv2's 4), so the
    margin's zero-padded edge never reaches the chunk. Equal to the whole-clip pass (tests/stream).
    """

    MARGIN = 4   # positions of audio before a chunk that its front end needs (3, plus one to spare)

    def __init__(self, encoder: StreamingMelEncoder) -> None:
        self.enc = encoder
        self.history = self.MARGIN                                     # positions of audio before each chunk
        self.kv: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * encoder.layers
        self.keep = (encoder.context_chunks + 1) * encoder.chunk       # positions of keys a chunk attends to

    @torch.no_grad()
    def chunk(self, audio: torch.Tensor) -> torch.Tensor:
        """(S,) audio of the next chunk's positions [p - history, p + chunk) (from sample 0 while p < history)
        -> its features (chunk, D)."""
        enc, c = self.enc, self.enc.chunk
        x = enc._conv(causal_log_mel(audio[None], enc.n_mels))[0, -c:]             # (C, D)
        if enc.encoder is None:
            return x
        for j, layer in enumerate(enc.encoder.layers):
            x = self._layer(j, layer, x)
        return x

    def _layer(self, j: int, layer: nn.TransformerEncoderLayer, x: torch.Tensor) -> torch.Tensor:
        """A norm-first encoder layer on the new chunk (C, D), its keys/values appended to layer j's cache."""
        att = layer.self_attn
        d, h = x.shape[-1], att.num_heads
        q, k, v = F.linear(layer.norm1(x), att.in_proj_weight, att.in_proj_bias).chunk(3, dim=-1)   # (C, D) each
        if self.kv[j] is not None:
            k, v = torch.cat([self.kv[j][0], k])[-self.keep:], torch.cat([self.kv[j][1], v])[-self.keep:]
        self.kv[j] = (k, v)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(-1, h, d // h).transpose(0, 1)                            # (H, L, D/H)

        y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v)).transpose(0, 1).reshape(-1, d)
        x = x + att.out_proj(y)
        return x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
