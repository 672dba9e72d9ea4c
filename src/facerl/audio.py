"""Reading and writing speech audio: 16 kHz mono float32 in [-1, 1] everywhere inside facerl."""

from __future__ import annotations

import os
import warnings
from fractions import Fraction

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

from facerl.errors import FacerlError
from facerl.utils.io import atomic_path, existing_file

SAMPLE_RATE = 16_000


def resample(audio: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling; (S,) -> (S * rate_out / rate_in,)."""
    if rate_in == rate_out:
        return audio.astype(np.float32)
    ratio = Fraction(rate_out, rate_in)
    return resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)


def to_float(samples: np.ndarray) -> np.ndarray:
    """PCM integers or floats -> float32 in [-1, 1]."""
    if samples.dtype.kind == "f":
        return samples.astype(np.float32)
    if samples.dtype == np.uint8:
        return ((samples.astype(np.float32) - 128.0) / 128.0)
    return (samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1))


def read_wav(path: str | os.PathLike, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a wav file as (S,) float32 mono at ``rate``: stereo is downmixed, other rates resampled."""
    path = existing_file(path, "audio")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", wavfile.WavFileWarning)  # unknown chunks are harmless ...
            rate_in, samples = wavfile.read(path)
    except Exception as exc:  # noqa: BLE001 - scipy raises assorted types on malformed headers (even UnboundLocalError)
        raise FacerlError(f"cannot read {path} as a wav file ({type(exc).__name__}: {exc}); "
                          "convert it to PCM wav first") from None
    truncated = next((w for w in caught if "EOF prematurely" in str(w.message)), None)
    if truncated is not None:  # ... but a data chunk shorter than its header says is a damaged file
        detail = str(truncated.message).split("; ")[-1].rstrip(".")
        raise FacerlError(f"{path} is truncated ({detail}): an interrupted copy or download? re-export it")
    if samples.size == 0:
        raise FacerlError(f"audio file has no samples: {path}")
    audio = to_float(samples)
    if not np.isfinite(audio).all():
        raise FacerlError(f"audio file contains NaN or infinite samples: {path}")
    if audio.ndim == 2:  # (S, channels) -> (S,)
        audio = audio.mean(axis=1)
    return resample(audio, int(rate_in), rate)


def write_wav(path: str | os.PathLike, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write (S,) float audio as 16-bit PCM, atomically."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype(np.int16)
    with atomic_path(path) as tmp:
        wavfile.write(tmp, rate, pcm)
