"""Live audio in, animation frames out: ``Animator(checkpoint).push(pcm) -> [Frame]``, any chunk size.

Dimensions: S audio samples (16 kHz), N encoder positions (50 Hz), C positions per chunk, T motion frames
(30 fps), K motion coefficients, V vertices.

The actor must have a streaming audio encoder: ``model.audio.kind=stream``
(:class:`facerl.models.streaming.StreamingMelEncoder`) or Whisper on short windows
(:class:`facerl.models.whisper.WhisperWindowEncoder`). As audio arrives, every completed chunk of encoder
positions is encoded from the audio it needs (:class:`facerl.models.streaming.ChunkEncoder`: each layer keeps
the keys and values later chunks attend to; :class:`facerl.models.whisper.WhisperChunks`: the chunk's window),
so its features equal those of the whole clip; each motion frame whose audio (plus the look-ahead) has arrived is decoded
with the actor's key/value cache, attending to at most ``window`` past frames. Memory stays bounded: the
audio, the features and the cache keep only what later frames can still use. The output equals
``Actor.generate(..., window=window)`` on the whole clip (tested to 1e-5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facerl.audio import SAMPLE_RATE
from facerl.errors import FacerlError
from facerl.models.audio import MOTION_FPS
from facerl.models.checkpoint import load_actor
from facerl.models.fast_decode import StreamDecoder
from facerl.models.streaming import POSITION_SAMPLES

DEFAULT_WINDOW = 900   # decoder frames attended to (30 s): longer than every training clip, so nothing changes


@dataclass
class Frame:
    index: int                          # frame number since the stream began (30 fps)
    time_s: float                       # index / 30
    arkit: np.ndarray                   # (52,) float32 in [0, 1], ARKit order
    vertices: np.ndarray | None = None  # (V, 3) float32, with vertices=True


class Animator:
    """One live stream: ``push`` PCM chunks, receive frames in order, each once; ``flush`` at the end."""

    sample_rate = SAMPLE_RATE
    fps = MOTION_FPS

    def __init__(self, checkpoint: str | Path, style: str = "average", device: str = "cpu",
                 vertices: bool = False, window: int = DEFAULT_WINDOW, actor_bundle=None, fast: bool = True) -> None:
        from facerl.export.outputs import CurveMaker, CurveOptions

        actor, meta, _ = actor_bundle or load_actor(checkpoint, device)
        if not actor.audio_encoder.streams:
            raise FacerlError(f"{checkpoint}: its audio encoder ({type(actor.audio_encoder).__name__}) looks at the "
                              "whole clip; train a streaming actor (facerl train experiment=stream, or "
                              "python -m facerl.train.distil)")
        self.actor, self.meta, self.device = actor.eval(), meta, torch.device(device)
        self.encoder = actor.audio_encoder                 # a ChunkedStream (StreamingMelEncoder or Whisper windows)
        self.lookahead_ms, self.window, self.with_vertices = self.encoder.lookahead_ms, window, vertices
        self.fast = fast and self.device.type == "cpu"     # the NumPy decoder step; False: the torch one (CUDA)
        self.style = torch.tensor([meta.style_index(style)], device=self.device)
        self.template = meta.template.to(self.device)[None]                            # (1, V*3)
        self.template_np = meta.template.cpu().numpy().reshape(-1, 3)                 # (V, 3), for the solver
        basis = None if actor.motion.is_identity else actor.motion.basis.cpu().numpy()
        route = "readout" if basis is not None else "solve"
        self.curves = CurveMaker(CurveOptions(route=route, smooth=0.0), meta.n_vertices, basis)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next push starts at frame 0."""
        from facerl.models.actor import _CachedSteps

        self.audio = np.zeros(0, np.float32)       # samples from absolute index self.audio_start on
        self.audio_start = 0
        self.n_samples = 0                         # samples received
        self.features: dict[int, torch.Tensor] = {}   # encoder position -> (D,) features not yet used
        self.oldest = 0                            # the lowest position still in self.features
        self.n_positions = 0                       # positions encoded so far
        self.chunks = self.encoder.stream_state()  # the encoder's per-stream state (keys and values, or windows)
        self.next_frame = 0
        if self.fast:                                   # the NumPy step (the same function, ~10x less overhead)
            self.decoder = StreamDecoder(self.actor, self.style, self.window)
        else:                                           # the torch step: its cache, style and fed-back motion
            self.decoder = None
            with torch.inference_mode():
                self.steps = _CachedSteps(self.actor, 1, None, self.device, self.window)
                self.style_emb = self.actor.style_map(self.actor.style_vector(self.style))   # (1, D)
                self.prev = torch.zeros(1, 1, self.actor.motion.dim, device=self.device)     # frame -1: none

    # ---- input ----------------------------------------------------------------------------------------------
    def push(self, pcm: np.ndarray) -> list[Frame]:
        """Mono 16 kHz audio, float32 in [-1, 1] or int16, of any length -> the frames it completes."""
        self._append(_as_float(pcm))
        return self._frames(final=False)

    def flush(self) -> list[Frame]:
        """End of speech: the remaining frames (the last chunk completed with silence), then a fresh stream."""
        total = max(1, round(self.n_samples * MOTION_FPS / SAMPLE_RATE))                 # as offline animate
        need = max(self.encoder.needed_samples(total - 1) - self.n_samples, 0)
        self._append(np.zeros(need, np.float32), counted=False)
        frames = self._frames(final=True, n_frames=total)
        self.reset()
        return frames

    def _append(self, audio: np.ndarray, counted: bool = True) -> None:
        self.audio = np.concatenate([self.audio, audio])
        if counted:
            self.n_samples += len(audio)
        self._encode()

    # ---- encoder: whole chunks, incrementally ------------------------------------------------------------------------
    def _encode(self) -> None:
        chunk = self.encoder.chunk
        ready = (self.audio_start + len(self.audio)) // POSITION_SAMPLES // chunk * chunk   # whole chunks of audio
        while self.n_positions < ready:
            p = self.n_positions
            lo = max(0, p - self.chunks.history) * POSITION_SAMPLES - self.audio_start
            hi = (p + chunk) * POSITION_SAMPLES - self.audio_start
            with torch.inference_mode():
                feats = self.chunks.chunk(torch.from_numpy(self.audio[lo:hi]).to(self.device))   # (C, D)
            for q in range(chunk):
                self.features[p + q] = feats[q]
            self.n_positions = p + chunk
        drop = max(0, self.n_positions - self.chunks.history) * POSITION_SAMPLES - self.audio_start
        if drop > 0:                                                          # audio no later chunk needs
            self.audio, self.audio_start = self.audio[drop:], self.audio_start + drop

    # ---- decoder: one frame at a time, in order ------------------------------------------------------------------
    def _frames(self, final: bool, n_frames: int | None = None) -> list[Frame]:
        out = []
        while (n_frames is None or self.next_frame < n_frames) and self._can_decode(final):
            out.append(self._decode(self.next_frame))
            self.next_frame += 1
        return out

    def _can_decode(self, final: bool) -> bool:
        i = self.next_frame
        if not final and self.encoder.needed_samples(i) > self.n_samples:
            return False                                # its look-ahead has not arrived yet
        return self.encoder.position_of(i) < self.n_positions

    @torch.inference_mode()
    def _decode(self, i: int) -> Frame:
        actor, p = self.actor, self.encoder.position_of(i)
        feat = self.features[min(p, self.n_positions - 1)]                            # (Da,)
        if self.decoder is not None:
            coeffs = self.decoder.step(feat.numpy())[None]                            # (1, K)
        else:
            mem = actor.audio_map(feat[None, None])                                   # (1, 1, D)
            cross = [layer.cross_attn.merge(layer.cross_attn.keys_values(mem)[1]) for layer in actor.layers]
            self.prev = self.steps(self.prev, self.style_emb, None, i, i + 1, cross=cross)   # (1, 1, K)
            coeffs = self.prev[0].cpu().numpy()
        while self.oldest < p:                                                        # no later frame needs them
            self.features.pop(self.oldest, None)
            self.oldest += 1
        verts = None
        if self.with_vertices or self.curves.solver is not None:                      # the read-out needs none
            mean = torch.from_numpy(coeffs).to(self.device)[None]                     # (1, 1, K)
            verts = actor.vertices(mean, self.template)[0].cpu().numpy().reshape(1, -1, 3)  # (1, V, 3)
        curves = self.curves.curves(verts, self.template_np, MOTION_FPS, None, coeffs)
        return Frame(i, i / MOTION_FPS, curves.weights[0], verts[0] if self.with_vertices else None)


def _as_float(pcm: np.ndarray) -> np.ndarray:
    """int16 or float PCM (S,) -> float32 in [-1, 1]; anything else is a one-line error."""
    pcm = np.asarray(pcm)
    if pcm.ndim != 1:
        raise FacerlError(f"audio must be mono samples (S,), got shape {pcm.shape}")
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    if pcm.dtype.kind != "f":
        raise FacerlError(f"audio must be int16 or float PCM, got {pcm.dtype}")
    pcm = pcm.astype(np.float32)
    if not np.isfinite(pcm).all():
        raise FacerlError("the audio holds NaN or infinite samples")
    return pcm
