"""The actor's generation loop without per-frame torch overhead (CPU inference; :meth:`Actor.generate` uses it).

Dimensions: B batch, T frames, K motion-space size, D model width, H heads, E = D / H, L layers, Na audio frames.

Why: a decode step of the default actor is ~25 small torch calls on (B, 1, 64) tensors. Their arithmetic is a
few microseconds; dispatching them costs ~0.2 ms, so 10 s of speech (300 frames) spent ~60 ms in Python and
torch's dispatcher. Here everything that does not depend on the fed-back motion is computed once for all frames
(style embedding + positional encoding + input bias; the cross-attention output of each frame's aligned audio
frame, an affine map of its features: each frame attends to one audio key, so its softmax weight is 1); the step
itself is a handful of NumPy calls on preallocated float32 buffers: one fused q/k/v product, attention over the
cached keys, three layer norms and the feed-forward.

It computes the same function as the cached torch path (:class:`facerl.models.actor._CachedSteps`), in float32
(tests/models/test_fast_decode.py: equal to it and to the full-prefix loop within 1e-5). Used for generation
without gradients, in eval mode, on the CPU, when the fed-back motion is the mean or mean + std * given noise;
anything else (autoregressive training, fresh random draws, CUDA) stays on the torch path.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

LN_EPS = 1e-5    # torch.nn.LayerNorm's default, as DecoderLayer uses


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


@functools.lru_cache(maxsize=8)
def _average(d: int) -> np.ndarray:
    """(D, 1) column of 1/D."""
    return np.full((d, 1), 1.0 / d, np.float32)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(B, D) -> (B, D), as torch.nn.LayerNorm (biased variance); in place on ``x``."""
    x -= x @ _average(x.shape[-1])                  # (B, 1) means: a matrix product is cheaper than .mean here
    x *= weight / np.sqrt(np.einsum("bd,bd->b", x, x)[:, None] * (1.0 / x.shape[-1]) + LN_EPS)
    x += bias
    return x


class _Layer:
    """One DecoderLayer's weights as NumPy arrays, q/k/v fused into one (D, 3D) matrix, 1/sqrt(E) folded into q."""

    def __init__(self, layer, audio_map) -> None:
        att = layer.self_attn
        scale = 1.0 / math.sqrt(att.q.weight.shape[0] // att.heads)
        self.w_qkv = np.concatenate([_np(att.q.weight) * scale, _np(att.kv.weight)]).T.copy()   # (D, 3D)
        self.b_qkv = np.concatenate([_np(att.q.bias) * scale, _np(att.kv.bias)])                # (3D,)
        self.w_out, self.b_out = _np(att.out.weight).T.copy(), _np(att.out.bias)         # (D, D), (D,)
        lin1, lin2 = layer.ffn[0], layer.ffn[3]
        self.w1, self.b1 = _np(lin1.weight).T.copy(), _np(lin1.bias)                     # (D, F), (F,)
        self.w2, self.b2 = _np(lin2.weight).T.copy(), _np(lin2.bias)                     # (F, D), (D,)
        self.norms = [(_np(n.weight), _np(n.bias)) for n in (layer.norm1, layer.norm2, layer.norm3)]
        # A frame's cross-attention output from its audio features (Da,): audio_map, the value projection and
        # the output projection, composed (float64, then float32) into one affine map (Da, D), (D,).
        d = att.q.weight.shape[0]
        cross = layer.cross_attn
        wa, ba = audio_map.weight.double(), audio_map.bias.double()
        wv, bv = cross.kv.weight[d:].double(), cross.kv.bias[d:].double()
        wo, bo = cross.out.weight.double(), cross.out.bias.double()
        self.w_cross = _np((wo @ wv @ wa).T)                                             # (Da, D)
        self.b_cross = _np(wo @ (wv @ ba + bv) + bo)                                     # (D,)


class DecoderWeights:
    """An actor's decoder as NumPy arrays, copied from its current weights (~1 ms). Made afresh for every
    generation and every stream, never cached on the actor: a cache keyed on the weights would go stale under
    in-place edits it cannot see (fused optimisers, ``p.data = ...``), and silently give the old model."""

    def __init__(self, actor) -> None:
        from facerl.models.actor import periodic_encoding

        cfg = actor.cfg
        self.width, self.heads, self.period = cfg.width, cfg.heads, cfg.period
        self.layers = [_Layer(layer, actor.audio_map) for layer in actor.layers]
        self.w_motion = _np(actor.motion_map.weight).T.copy()                             # (K, D)
        self.b_motion = _np(actor.motion_map.bias)                                        # (D,)
        self.w_head, self.b_head = _np(actor.head.weight).T.copy(), _np(actor.head.bias)  # (D, K), (K,)
        self.pe = _np(periodic_encoding(torch.arange(cfg.period), cfg.width, cfg.period))  # (P, D)
        self.slopes = actor.slopes.cpu()

    def bias_rows(self, span: int) -> np.ndarray:
        """(H, 1, span) self-attention bias at distances span-1 .. 0 (the last column is the frame itself)."""
        from facerl.models.actor import distance_bias

        return _np(distance_bias(span, self.slopes, self.period).flip(-1))[:, None]

    def step(self, x: np.ndarray, keys: list[np.ndarray], values: list[np.ndarray], slot: int, lo: int,
             bias: np.ndarray, cross: list[np.ndarray]) -> np.ndarray:
        """One frame through the decoder: its token (B, D) -> its mean (B, K).

        ``keys[j]`` (B, H, E, slots) and ``values[j]`` (B, H, slots, E) are layer j's caches; this frame's key and
        value go to ``slot`` and it attends to slots ``lo .. slot`` with ``bias`` (H, 1, slot + 1 - lo);
        ``cross[j]`` (B, D) is its cross-attention output in layer j."""
        b, d, h = x.shape[0], self.width, self.heads
        e = d // h
        for j, ly in enumerate(self.layers):
            qkv = x @ ly.w_qkv + ly.b_qkv                                                     # (B, 3D)
            keys[j][:, :, :, slot] = qkv[:, d:2 * d].reshape(b, h, e)
            values[j][:, :, slot] = qkv[:, 2 * d:].reshape(b, h, e)
            scores = qkv[:, :d].reshape(b, h, 1, e) @ keys[j][:, :, :, lo:slot + 1] + bias     # (B, H, 1, L)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            att = (scores @ values[j][:, :, lo:slot + 1]).reshape(b, d)                       # (B, D)
            x = _layer_norm(x + att @ ly.w_out + ly.b_out, *ly.norms[0])
            x = _layer_norm(x + cross[j], *ly.norms[1])
            x = _layer_norm(x + np.maximum(x @ ly.w1 + ly.b1, 0.0) @ ly.w2 + ly.b2, *ly.norms[2])
        return x @ self.w_head + self.b_head

    def caches(self, batch: int, slots: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Empty key caches (B, H, E, slots) (transposed, so a query multiplies them directly) and value caches."""
        e = self.width // self.heads
        return ([np.empty((batch, self.heads, e, slots), np.float32) for _ in self.layers],
                [np.empty((batch, self.heads, slots, e), np.float32) for _ in self.layers])


@torch.no_grad()
def fast_generate(actor, audio_feats: torch.Tensor, style: torch.Tensor, n_frames: int,
                  noise: torch.Tensor | None = None, window: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's cached generation -> (emitted, means), each (B, T, K) float32 on the CPU.

    ``noise`` (B, T, K): emitted = mean + std * noise (None: emitted = mean); ``window``: each frame attends to
    its last ``window`` frames (None: all)."""
    from facerl.models.actor import aligned_audio_frame

    w = DecoderWeights(actor)
    b, t, n_audio = audio_feats.shape[0], n_frames, audio_feats.shape[1]
    # ---- everything that does not depend on the fed-back motion, once ----
    style_emb = _np(actor.style_map(actor.style_vector(style)))                                   # (B, D)
    const = style_emb[:, None] + w.pe[np.arange(t) % w.period][None] + w.b_motion                # (B, T, D)
    aligned = _np(audio_feats[:, aligned_audio_frame(torch.arange(t), n_audio)])                  # (B, T, Da)
    cross = [aligned @ ly.w_cross + ly.b_cross for ly in w.layers]                                # (B, T, D) each
    span = t if window is None else min(window, t)
    bias_rows = w.bias_rows(span)                                                                 # (H, 1, span)
    std_noise = None if noise is None else _np(actor.log_std.exp() * noise)                       # (B, T, K)

    # ---- the loop: preallocated caches and outputs ----
    keys, values = w.caches(b, t)
    means = np.empty((b, t, w.w_head.shape[1]), np.float32)
    emitted = means if std_noise is None else np.empty_like(means)
    prev = np.zeros((b, w.w_head.shape[1]), np.float32)
    for i in range(t):
        lo = 0 if window is None else max(0, i + 1 - window)
        means[:, i] = w.step(prev @ w.w_motion + const[:, i], keys, values, i, lo,
                             bias_rows[:, :, span - (i + 1 - lo):], [c[:, i] for c in cross])
        if std_noise is not None:
            emitted[:, i] = means[:, i] + std_noise[:, i]
        prev = emitted[:, i]
    return torch.from_numpy(means.copy() if emitted is means else emitted), torch.from_numpy(means)


class StreamDecoder:
    """The decoder of one live stream, a frame at a time, attending to the last ``window`` frames: the same
    function as ``Actor.generate(window=window)``. Memory is bounded: the caches hold 2 * window frames and,
    when full, move their last window - 1 frames to the front (one copy per window frames), so keys stay in
    time order."""

    def __init__(self, actor, style: torch.Tensor, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.w, self.window = DecoderWeights(actor), window
        with torch.no_grad():
            self.style_emb = _np(actor.style_map(actor.style_vector(style)))[0] + self.w.b_motion   # (D,)
        self.keys, self.values = self.w.caches(1, 2 * window)
        self.bias_rows = self.w.bias_rows(window)
        self.prev = np.zeros((1, self.w.w_head.shape[1]), np.float32)
        self.offset = 0                      # frame index of cache slot 0
        self.frame = 0                       # the next frame

    def step(self, feat: np.ndarray) -> np.ndarray:
        """The next frame's audio features (Da,) -> its mean motion (K,) (float32, fed back for the next)."""
        w, i = self.w, self.frame
        if i - self.offset == 2 * self.window:                                # full: keep the last window - 1
            keep = self.window - 1
            if keep:                                                          # (window 1 keeps nothing)
                for k, v in zip(self.keys, self.values):
                    k[..., :keep] = k[..., -keep:].copy()
                    v[:, :, :keep] = v[:, :, -keep:].copy()
            self.offset = i - keep
        lo = max(0, i + 1 - self.window)
        cross = [(feat @ ly.w_cross + ly.b_cross)[None] for ly in w.layers]
        x = self.prev @ w.w_motion + (self.style_emb + w.pe[i % w.period])
        mean = w.step(x, self.keys, self.values, i - self.offset, lo - self.offset,
                      self.bias_rows[:, :, self.window - (i + 1 - lo):], cross)
        self.prev, self.frame = mean, i + 1
        return mean[0]


def can_fast_generate(actor, audio_feats: torch.Tensor, cache: bool, stochastic: bool,
                      noise: torch.Tensor | None) -> bool:
    """Whether :func:`fast_generate` computes this generation: CPU, an :class:`Actor` itself (not a subclass)
    with every module in eval mode and no hooks, no gradients or autocast, cached, and the fed-back motion is the
    mean or given noise (fresh draws from a torch generator stay on the torch path, so
    their random stream is unchanged)."""
    from facerl.models.actor import Actor

    return (cache and not torch.is_grad_enabled() and audio_feats.device.type == "cpu"
            and (noise is not None or not stochastic) and audio_feats.dtype == torch.float32
            and type(actor) is Actor and not torch.is_autocast_enabled("cpu")      # exactly the function it copies
            and not any(m.training or m._forward_hooks or m._forward_pre_hooks for m in actor.modules()))
