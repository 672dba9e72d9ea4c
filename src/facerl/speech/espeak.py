"""eSpeak NG in-process (PyPI ``espeakng-loader`` bundles the library and its data) with exact phone timings.

The library reports a phoneme event with the absolute output sample index at which each phoneme
starts (``espeak_EVENT.sample``), so phone boundaries are sample-accurate: a phone ends where the
next one starts, the last one where the audio ends.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from facerl.audio import SAMPLE_RATE, resample
from facerl.errors import FacerlError
from facerl.speech.phoneset import from_espeak
from facerl.speech.timing import Phone

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Voice:
    """An eSpeak voice: a language plus variant (``en-us+m3``), speaking rate (words/min) and pitch 0–100."""

    name: str = "en-us"
    rate: int = 165
    pitch: int = 50
    pitch_range: int = 50


@dataclass
class Utterance:
    audio: np.ndarray  # (S,) float32, 16 kHz mono
    phones: list[Phone]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


class Espeak:
    """One synthesiser per process (the library keeps global state)."""

    _instance: Espeak | None = None

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:  # pragma: no cover - dependency of the package
            raise FacerlError("espeakng-loader is not installed: pip install espeakng-loader") from None
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        data = espeakng_loader.get_data_path().encode()
        self.engine_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INIT_PHONEME_EVENTS)
        if self.engine_rate <= 0:
            raise FacerlError("eSpeak NG failed to initialise")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _Callback(self._on_audio)  # keep a reference: ctypes must not free it
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> Espeak:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _on_audio(self, wav, n_samples, events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                self._events.append((events[i].sample, events[i].id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    def synthesize(self, text: str, voice: Voice = Voice()) -> Utterance:
        """Speak ``text``; return 16 kHz audio and canonical phones with exact start/end times."""
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise FacerlError(f"unknown eSpeak voice {voice.name!r}")
        for param, value in ((_RATE, voice.rate), (_PITCH, voice.pitch), (_RANGE, voice.pitch_range)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks, self._events = [], []
        encoded = text.encode("utf-8")
        self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        raw = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        audio = resample(raw.astype(np.float32) / 32768.0, self.engine_rate, SAMPLE_RATE)
        phones = events_to_phones(self._events, len(raw), self.engine_rate)
        return Utterance(audio=audio, phones=phones)


def events_to_phones(events: list[tuple[int, str]], n_samples: int, rate: int) -> list[Phone]:
    """Phoneme start events (sample, mnemonic) -> contiguous canonical phones covering [0, n_samples).

    A mnemonic that maps to two phones (e.g. rhotic vowels) is split in equal halves; adjacent
    silences merge; a leading gap before the first event becomes SIL.
    """
    starts = [(s, m) for s, m in events if 0 <= s < n_samples]
    bounds = [s for s, _ in starts] + [n_samples]
    out: list[Phone] = []

    def push(a: int, b: int, phone: str) -> None:
        if b <= a:
            return
        if out and out[-1].phone == phone == "SIL":
            out[-1] = Phone(out[-1].start_s, b / rate, "SIL")
        else:
            out.append(Phone(a / rate, b / rate, phone))

    if starts and starts[0][0] > 0:
        push(0, starts[0][0], "SIL")
    for (a, mnemonic), b in zip(starts, bounds[1:]):
        parts = from_espeak(mnemonic)
        edges = np.linspace(a, b, len(parts) + 1).round().astype(int)
        for phone, lo, hi in zip(parts, edges[:-1], edges[1:]):
            push(int(lo), int(hi), phone)
    return out
