"""The actor: FaceFormer (Fan et al., CVPR 2022) with a key/value cache, no length limit and a Gaussian policy.

Dimensions: B batch, T motion frames (30 fps), V vertices, K motion-space size, D model width,
Da audio feature width, H heads, C training speakers (style one-hot size).

What is FaceFormer here, and what is ours:
* audio features (any :class:`AudioEncoder`) -> ``audio_map`` -> the decoder's memory;
* motion tokens: token 0 is the style embedding of "no motion yet" and token t is the embedding of
  frame t-1's motion plus the style embedding (a linear map of the speaker one-hot), plus the
  periodic positional encoding (period 30);
* a transformer decoder whose self-attention is causal with the ALiBi-style periodic bias
  ``-slope_h * floor((i - j) / period)`` and whose cross-attention follows the alignment mask (motion
  frame i sees audio frame i);
* ``head`` (zero-initialised) gives each frame's motion, vertices = template + motion.
Ours: biases are computed from positions on the fly (no 600-frame table), one :meth:`Actor.generate`
serves inference, evaluation and RL rollouts with a key/value cache, and motion lives in a
:class:`MotionSpace` (a PCA basis by default) where the policy is a diagonal Normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal

from facerl.models.audio import (
    AudioEncoder,
    AudioEncoderConfig,
    build_audio_encoder,
    sinusoidal_encoding,
)
from facerl.models.fast_decode import can_fast_generate, fast_generate


@dataclass
class ActorConfig:
    """FaceFormer hyper-parameters (defaults: the VOCASET model of the paper, mel audio encoder)."""

    width: int = 64                 # D, FaceFormer's feature_dim for VOCASET
    heads: int = 4                  # H
    layers: int = 1                 # decoder layers
    ffn_mult: int = 2               # feed-forward width = ffn_mult * D
    dropout: float = 0.1
    period: int = 30                # periodic positional encoding and attention-bias period (frames)
    motion_space: str = "basis"     # basis (PCA of training motion) | vertices (FaceFormer's V*3 output)
    basis_dim: int = 64             # K for motion_space=basis (fewer if the training motion has lower rank)
    init_log_std: float = -1.6      # initial log std of the policy, in motion-space units (basis: unit variance)
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)

    def validate(self) -> None:
        """User-facing checks, before any data is read."""
        from facerl.errors import FacerlError

        for name, width, heads in (("model", self.width, self.heads),
                                   ("model.audio", self.audio.width, self.audio.heads)):
            if width < 2 or heads < 1 or width % heads or width % 2:
                raise FacerlError(f"{name}.width ({width}) must be even and divisible by {name}.heads ({heads})")
        if self.motion_space not in ("basis", "vertices"):
            raise FacerlError(f"model.motion_space must be basis or vertices, got {self.motion_space!r}")
        if self.layers < 1 or self.period < 1 or self.basis_dim < 1:
            raise FacerlError("model.layers, model.period and model.basis_dim must be >= 1")


class MotionSpace(nn.Module):
    """Linear motion space: coefficients (..., K) <-> vertex offsets (..., V*3) from the template.

    ``basis`` rows are orthogonal; for a PCA basis row k is ``sigma_k * u_k`` (sigma_k the RMS of the
    training motion along u_k), so coefficients have unit variance on the training set and one policy
    std means the same amount of motion in every direction. Identity when ``basis`` is None.
    """

    def __init__(self, n_coords: int, dim: int | None = None) -> None:
        super().__init__()
        self.n_coords = n_coords
        self.is_identity = dim is None
        self.dim = n_coords if dim is None else dim
        self.register_buffer("basis", torch.zeros(0 if dim is None else dim, n_coords))

    @classmethod
    def fit(cls, offsets: torch.Tensor, dim: int, rel_tol: float = 1e-4, seed: int = 0) -> MotionSpace:
        """PCA (uncentred, so zero motion stays the template) of training offsets (N, V*3) -> K <= dim."""
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)  # svd_lowrank draws a random projection
        q = min(dim + 8, *offsets.shape)
        _, s, v = torch.svd_lowrank(offsets.double(), q=q, niter=4, M=None)  # s (q,), v (V*3, q)
        torch.random.set_rng_state(gen_state)
        keep = int(min(dim, (s > rel_tol * s[0]).sum()))
        rms = s[:keep] / math.sqrt(len(offsets))                 # (K,) RMS coefficient along each axis
        space = cls(offsets.shape[1], keep)
        space.basis.copy_((v[:, :keep] * rms).T.float())          # (K, V*3)
        return space

    def decode(self, coeffs: torch.Tensor) -> torch.Tensor:
        """(..., K) -> (..., V*3)."""
        return coeffs if self.is_identity else coeffs @ self.basis

    def mse_weights(self) -> torch.Tensor:
        """(K,) weights that turn a coefficient MSE into the vertex MSE (see facerl.train.losses)."""
        if self.is_identity:
            return torch.full((self.dim,), 1.0 / self.n_coords, device=self.basis.device)
        return (self.basis * self.basis).sum(1) / self.n_coords

    def encode(self, offsets: torch.Tensor) -> torch.Tensor:
        """(..., V*3) -> (..., K): orthogonal projection onto the span of the basis."""
        if self.is_identity:
            return offsets
        return (offsets @ self.basis.T) / (self.basis * self.basis).sum(1)


def alibi_slopes(heads: int) -> torch.Tensor:
    """ALiBi head slopes (Press et al. 2022): geometric, 2^(-8/n) ... for n heads (n rounded to a power of 2)."""
    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    p = 2 ** math.floor(math.log2(heads))
    slopes = power_of_two(p)
    if p < heads:
        slopes += power_of_two(2 * p)[0::2][: heads - p]
    return torch.tensor(slopes)


def periodic_bias(q_pos: torch.Tensor, k_pos: torch.Tensor, slopes: torch.Tensor, period: int) -> torch.Tensor:
    """Causal periodic attention bias (H, Lq, Lk): -slope * floor((i - j) / period) for j <= i, -inf after i."""
    dist = (q_pos[:, None] - k_pos[None, :]).float()                       # (Lq, Lk)
    bias = -slopes.to(dist)[:, None, None] * torch.floor(dist / period)     # (H, Lq, Lk)
    return bias.masked_fill(dist < 0, float("-inf"))


def aligned_audio_frame(frame: torch.Tensor | int, n_audio: int):
    """The audio frame a motion frame attends to (FaceFormer, VOCASET: the same index; past the end, the last)."""
    return frame.clamp(max=n_audio - 1) if isinstance(frame, torch.Tensor) else min(frame, n_audio - 1)


def alignment_mask(q_pos: torch.Tensor, n_audio: int) -> torch.Tensor:
    """Audio-motion alignment as an additive mask (Lq, Na): 0 at each frame's aligned audio frame, -inf elsewhere."""
    k_pos = torch.arange(n_audio, device=q_pos.device)
    allowed = aligned_audio_frame(q_pos, n_audio)[:, None] == k_pos[None, :]
    return torch.zeros(allowed.shape, device=q_pos.device).masked_fill(~allowed, float("-inf"))


def distance_bias(n: int, slopes: torch.Tensor, period: int) -> torch.Tensor:
    """(H, n): the periodic bias at distances 0..n-1, so a cached step reads its row without rebuilding it."""
    return -slopes[:, None] * torch.floor(torch.arange(n, device=slopes.device, dtype=torch.float32) / period)


def periodic_encoding(positions: torch.Tensor, dim: int, period: int) -> torch.Tensor:
    """FaceFormer's periodic positional encoding: sinusoids of position mod period, (L, D)."""
    return sinusoidal_encoding(positions % period, dim)


class Attention(nn.Module):
    """Multi-head attention with an additive bias; keys/values may come from a cache."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)   # (B, L, D) -> (B, H, L, D/H)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)                                 # (B, H, L, D/H) each

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None,
               dropout: float) -> torch.Tensor:
        q = self.split(self.q(x))                                           # (B, H, Lq, D/H)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)
        return self.merge(y)

    def merge(self, y: torch.Tensor) -> torch.Tensor:
        """Heads (B, H, L, D/H) -> output projection (B, L, D)."""
        b, _, n, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, n, -1))


class DecoderLayer(nn.Module):
    """Post-norm transformer decoder layer (as torch.nn.TransformerDecoderLayer, which FaceFormer uses)."""

    def __init__(self, width: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.self_attn, self.cross_attn = Attention(width, heads), Attention(width, heads)
        self.ffn = nn.Sequential(nn.Linear(width, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, width))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.drop = nn.Dropout(dropout)
        self.p = dropout

    def forward(self, x, self_kv, self_bias, mem_kv=None, mem_bias=None, cross_out=None):
        """``cross_out`` (B, L, D): the cross-attention output when it is already known (see _CachedSteps)."""
        p = self.p if self.training else 0.0
        x = self.norm1(x + self.drop(self.self_attn.attend(x, *self_kv, self_bias, p)))
        if cross_out is None:
            cross_out = self.cross_attn.attend(x, *mem_kv, mem_bias, p)
        x = self.norm2(x + self.drop(cross_out))
        return self.norm3(x + self.drop(self.ffn(x)))


@dataclass
class Rollout:
    """One generated sequence batch: what was emitted (``motion``: the mean, or a sample) and the means."""

    motion: torch.Tensor   # (B, T, K) emitted coefficients (fed back as the next frame's input)
    mean: torch.Tensor     # (B, T, K) policy means along the emitted sequence


class Actor(nn.Module):
    def __init__(self, cfg: ActorConfig, n_vertices: int, n_styles: int, motion: MotionSpace | None = None,
                 audio_hf_config: dict | None = None) -> None:
        super().__init__()
        cfg.validate()
        self.cfg, self.n_vertices, self.n_styles = cfg, n_vertices, n_styles
        self.motion = motion or MotionSpace(n_vertices * 3)
        k, d = self.motion.dim, cfg.width
        self.audio_encoder: AudioEncoder = build_audio_encoder(cfg.audio, audio_hf_config)
        self.audio_map = nn.Linear(self.audio_encoder.feature_dim, d)
        self.motion_map = nn.Linear(k, d)
        self.style_map = nn.Linear(n_styles, d, bias=False)
        self.layers = nn.ModuleList(DecoderLayer(d, cfg.heads, cfg.ffn_mult * d, cfg.dropout)
                                    for _ in range(cfg.layers))
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(d, k)
        nn.init.zeros_(self.head.weight)  # FaceFormer: start at the template (zero motion)
        nn.init.zeros_(self.head.bias)
        self.log_std = nn.Parameter(torch.full((k,), cfg.init_log_std))
        self.register_buffer("slopes", alibi_slopes(cfg.heads), persistent=False)

    # ---- inputs -------------------------------------------------------------------------------------------
    def encode_audio(self, audio: torch.Tensor, audio_mask: torch.Tensor, n_frames: int) -> torch.Tensor:
        """(B, S) 16 kHz -> aligned audio features (B, T, Da)."""
        return self.audio_encoder(audio, audio_mask, n_frames)

    def style_vector(self, style: torch.Tensor) -> torch.Tensor:
        """Style indices (B,) -> one-hot (B, C); index -1 means the style-independent average of all one-hots."""
        onehot = F.one_hot(style.clamp(min=0), self.n_styles).float()
        return torch.where((style < 0)[:, None], torch.full_like(onehot, 1.0 / self.n_styles), onehot)

    def _tokens(self, prev: torch.Tensor, style_emb: torch.Tensor, start: int,
                pe: torch.Tensor | None = None) -> torch.Tensor:
        """Motion inputs (B, L, K) at positions start.. -> decoder tokens (B, L, D); ``pe`` (L, D) if precomputed."""
        if pe is None:
            pos = torch.arange(start, start + prev.shape[1], device=prev.device)
            pe = periodic_encoding(pos, self.cfg.width, self.cfg.period)
        return self.drop(self.motion_map(prev) + style_emb[:, None] + pe)

    def _memory(self, audio_feats: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        mem = self.audio_map(audio_feats)                                   # (B, Na, D)
        return [layer.cross_attn.keys_values(mem) for layer in self.layers]

    # ---- teacher-forced pass ----------------------------------------------------------------------------
    def forward(self, audio_feats: torch.Tensor, style: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """Policy means for every frame given the previous frames' motion (teacher forcing).

        audio_feats (B, T, Da), style (B,) indices, motion (B, T, K) the sequence being explained
        (ground truth for supervised training, a rollout for RL) -> means (B, T, K).
        """
        prev = F.pad(motion[:, :-1], (0, 0, 1, 0))                          # (B, T, K): frame -1 is no motion
        style_emb = self.style_map(self.style_vector(style))
        return self._decode(prev, style_emb, self._memory(audio_feats), audio_feats.shape[1])

    def _decode(self, prev: torch.Tensor, style_emb: torch.Tensor, memory, n_audio: int) -> torch.Tensor:
        """The uncached decoder: motion inputs (B, L, K) of frames -1..L-2 -> means (B, L, K) of frames 0..L-1."""
        x = self._tokens(prev, style_emb, 0)                                # (B, L, D)
        pos = torch.arange(x.shape[1], device=x.device)
        self_bias = periodic_bias(pos, pos, self.slopes, self.cfg.period)[None]     # (1, H, L, L)
        mem_bias = alignment_mask(pos, n_audio)[None, None]                         # (1, 1, L, Na)
        for layer, mem_kv in zip(self.layers, memory):
            x = layer(x, layer.self_attn.keys_values(x), self_bias, mem_kv, mem_bias)
        return self.head(x)

    def distribution(self, mean: torch.Tensor) -> Normal:
        """The stochastic policy: an independent Normal per motion coefficient (learned, state-independent std)."""
        return Normal(mean, self.log_std.exp().expand_as(mean))

    def log_prob(self, mean: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """Per-frame log-density (B, T) of ``motion`` (B, T, K) under the policy with means ``mean``."""
        return self.distribution(mean).log_prob(motion).sum(-1)

    # ---- generation ---------------------------------------------------------------------------------------
    def generate(self, audio_feats: torch.Tensor, style: torch.Tensor, n_frames: int | None = None,
                 stochastic: bool = False, cache: bool = True, generator: torch.Generator | None = None,
                 noise: torch.Tensor | None = None, window: int | None = None, fast: bool = True) -> Rollout:
        """Autoregressive generation: the one routine behind inference, evaluation and RL rollouts.

        audio_feats (B, T, Da) from :meth:`encode_audio`; style (B,) indices (-1: average style).
        ``stochastic`` feeds back samples of the policy instead of its means. ``cache=False`` runs
        the plain full-prefix loop (FaceFormer's), kept as the reference the cache must equal. ``noise``
        (B, T, K) standard-normal draws to use instead of fresh ones (RL's antithetic or smooth exploration).
        ``window``: each frame attends to the last ``window`` frames only (bounded memory for live streams,
        see :mod:`facerl.stream`; None: the whole past, as trained).
        Gradients flow if enabled (autoregressive training); wrap in ``torch.no_grad`` otherwise. Without
        gradients, in eval mode on the CPU (and without fresh random draws), the loop runs in
        :mod:`facerl.models.fast_decode` (the same function, faster); ``fast=False`` keeps the torch path
        (``_CachedSteps``), the reference it is tested against.
        """
        b, t = audio_feats.shape[0], n_frames or audio_feats.shape[1]
        if window is not None and not cache:
            raise ValueError("a decoder window needs the cache")
        if fast and can_fast_generate(self, audio_feats, cache, stochastic, noise):
            emitted, means = fast_generate(self, audio_feats, style, t, noise, window)
            return Rollout(emitted, means)
        style_emb = self.style_map(self.style_vector(style))                # (B, D)
        memory = self._memory(audio_feats)
        n_audio = audio_feats.shape[1]
        prev = audio_feats.new_zeros(b, 1, self.motion.dim)                 # frame -1: no motion
        emitted, means = [], []
        std = self.log_std.exp()
        step = _CachedSteps(self, b, t, audio_feats.device, window) if cache else None
        for i in range(t):
            if step is not None:
                mean = step(prev, style_emb, memory, i, n_audio)                   # prev: frame i-1 only
            else:
                mean = self._decode(prev, style_emb, memory, n_audio)[:, -1:]      # prev: frames -1..i-1
            if noise is not None:
                out = mean + std * noise[:, i:i + 1]
            elif stochastic:
                out = mean + std * torch.randn(mean.shape, generator=generator, device=mean.device)
            else:
                out = mean
            emitted.append(out)
            means.append(mean)
            prev = out if cache else torch.cat([prev, out], 1)
        return Rollout(torch.cat(emitted, 1), torch.cat(means, 1))

    # ---- outputs ------------------------------------------------------------------------------------------
    def vertices(self, motion: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        """Coefficients (B, T, K) + template (B, V*3) -> vertices (B, T, V*3)."""
        if self.motion.is_identity or motion.shape[1] == 1:   # one frame: the fused product rounds more (gemv)
            return template[:, None] + self.motion.decode(motion)
        basis = self.motion.basis                                           # (K, V*3)
        return torch.baddbmm(template[:, None], motion, basis.expand(motion.shape[0], *basis.shape))  # one pass


class _CachedSteps:
    """Key/value cache of one generation: each step embeds one frame and attends to the cached keys.

    Without autograd the cache is preallocated and filled in place; with autograd (autoregressive
    training) it grows by concatenation, since in-place writes would break the graph. The bias rows,
    positional encodings and aligned audio keys are read from tables made once per generation.
    """

    def __init__(self, actor: Actor, batch: int, n_frames: int | None, device, window: int | None = None) -> None:
        cfg = actor.cfg
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if n_frames is None and window is None:
            raise ValueError("an open-ended generation (a stream) needs a window")
        self.actor, self.in_place, self.window = actor, not torch.is_grad_enabled(), window
        # The cache holds `capacity` frames; a windowed one, when full, moves its last window - 1 frames to the
        # front (one copy per `capacity - window + 1` frames), so keys always stay in time order.
        self.capacity = n_frames if window is None else (2 * window if n_frames is None else min(n_frames, 2 * window))
        self.offset = 0                                                # frame index of cache slot 0
        self.pe = periodic_encoding(torch.arange(cfg.period, device=device), cfg.width, cfg.period)  # (P, D)
        span = n_frames if window is None else window
        self.dist_bias = distance_bias(span, actor.slopes.to(device), cfg.period)                   # (H, span)
        shape = (batch, cfg.heads, self.capacity, cfg.width // cfg.heads)
        self.cross_out: list[torch.Tensor] | None = None   # per layer (B, Na, D), set on the first step
        self.kv = [(torch.empty(shape, device=device), torch.empty(shape, device=device)) if self.in_place
                   else None for _ in actor.layers]

    def cross_outputs(self, memory) -> list[torch.Tensor]:
        """Per layer (B, Na, D): each frame attends to exactly one audio key, whose softmax weight is 1 whatever
        the query, so the cross-attention output of every frame is the projected value of its audio frame."""
        return [layer.cross_attn.merge(mem_v) for layer, (_, mem_v) in zip(self.actor.layers, memory)]

    def __call__(self, prev: torch.Tensor, style_emb: torch.Tensor, memory, i: int, n_audio: int,
                 cross: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Frame i-1's motion (B, 1, K) -> frame i's mean (B, 1, K). ``cross``: this frame's cross-attention
        outputs (per layer (B, 1, D)) when the audio arrives frame by frame (a stream; ``memory`` unused)."""
        actor = self.actor
        x = actor._tokens(prev, style_emb, i, self.pe[i % actor.cfg.period][None])        # (B, 1, D)
        lo = 0 if self.window is None else max(0, i + 1 - self.window)                     # first key frame
        self_bias = self.dist_bias[:, : i + 1 - lo].flip(-1)[None, :, None]               # (1, H, 1, i+1-lo)
        a = aligned_audio_frame(i, n_audio)
        if cross is None and self.cross_out is None and not actor.training:
            self.cross_out = self.cross_outputs(memory)
        if self.in_place and i - self.offset == self.capacity:                             # full: keep the window
            keep = self.window - 1
            if keep:                                                                       # (window 1 keeps none)
                for ck, cv in self.kv:
                    ck[:, :, :keep], cv[:, :, :keep] = ck[:, :, -keep:].clone(), cv[:, :, -keep:].clone()
            self.offset = i - keep
        for j, (layer, (mem_k, mem_v)) in enumerate(zip(actor.layers, memory or [(None, None)] * len(actor.layers))):
            k, v = layer.self_attn.keys_values(x)                                         # (B, H, 1, D/H)
            if self.in_place:
                ck, cv = self.kv[j]
                s = i - self.offset
                ck[:, :, s: s + 1], cv[:, :, s: s + 1] = k, v
                k, v = ck[:, :, lo - self.offset: s + 1], cv[:, :, lo - self.offset: s + 1]
            else:
                if self.kv[j] is not None:
                    k, v = torch.cat([self.kv[j][0], k], 2), torch.cat([self.kv[j][1], v], 2)
                self.kv[j] = (k, v)
                k, v = k[:, :, lo:], v[:, :, lo:]
            if cross is not None:
                x = layer(x, (k, v), self_bias, cross_out=cross[j])
            elif self.cross_out is not None:
                x = layer(x, (k, v), self_bias, cross_out=self.cross_out[j][:, a: a + 1])
            else:
                x = layer(x, (k, v), self_bias, (mem_k[:, :, a: a + 1], mem_v[:, :, a: a + 1]), None)
        return actor.head(x)
