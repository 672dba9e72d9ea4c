"""eSpeak NG in-process (PyPI ``espeakng-loader`` bundles the library and its data) with exact phone timings.

The library reports a phoneme event with the absolute output sample index at which each phoneme
starts (``espeak_EVENT.sample``), so phone boundaries are sample-accurate: a phone ends where the
next one starts, the last one where the audio ends.

Custom voices: a :class:`Variant` is an eSpeak voice-variant file (formants, pitch, breathiness, ...).
eSpeak reads variants only from its data folder, so :func:`write_data_dir` makes a folder that links to
the bundled data and adds the variant files; ``Espeak.get(data_dir)`` speaks from it. Variants change
the sound, never how phone timings are obtained, so timings stay exact.

eSpeak NG (library, data and the bundled variants our voices start from) is GPL-3.0-or-later
(:data:`LICENCE`); corpora built with it record that in their provenance.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

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
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_RAND_SEED = 1
_MAX_VOICES = 349   # eSpeak lists at most this many voice files (languages + variants)
_N_PATH_HOME = 160  # espeak-ng 1.52 keeps its data path in a 160-byte buffer (POSIX)

LICENCE = "GPL-3.0-or-later"
VARIANT_NAME = re.compile(r"^[A-Za-z0-9_]{1,24}$")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Voice:
    """An eSpeak voice: a language plus variant (``en-us+m3``), speaking rate (words/min), pitch and pitch
    range 0–100 (50: the variant's own) and volume (0–200, 100: eSpeak's default)."""

    name: str = "en-us"
    rate: int = 165
    pitch: int = 50
    pitch_range: int = 50
    volume: int = 100


@dataclass(frozen=True)
class Variant:
    """An eSpeak voice variant (the ``voices/!v/<name>`` file format): a voice's timbre on top of a language.

    ``None`` (or an empty tuple) leaves eSpeak's default. Percentages are of the language's own values.
    """

    name: str
    gender: str = "male"
    pitch: tuple[int, int] | None = None                 # base and top of the pitch range, Hz
    formants: tuple[tuple[int, int, int, int], ...] = ()  # per formant 0-8: (freq %, height %, bandwidth %, +Hz)
    flutter: int | None = None                           # slow pitch wobble
    roughness: int | None = None                         # creak, 0-7
    voicing: int | None = None                           # amplitude of voiced sound, %
    consonants: tuple[int, int] | None = None            # amplitude of unvoiced / voiced consonants, %
    breath: tuple[int, ...] = ()                         # breath noise per formant 1-8 (breathiness)
    breathw: tuple[int, ...] = ()                        # bandwidths of that noise per formant 1-8, Hz
    tone: tuple[int, ...] = ()                           # spectral shape: (Hz, amplitude 0-255) pairs
    echo: tuple[int, int] | None = None                  # delay ms, amplitude %
    klatt: int = 0                                       # 0: eSpeak's wave generator; 1-6: Klatt synthesiser

    def text(self) -> str:
        """The variant file."""
        if not VARIANT_NAME.match(self.name):
            raise FacerlError(f"bad eSpeak variant name {self.name!r} (letters, digits, _; at most 24)")
        lines = ["language variant", f"name {self.name}", f"gender {self.gender}"]
        if self.klatt:
            lines.append(f"klatt {self.klatt}")
        if self.pitch is not None:
            lines.append("pitch {} {}".format(*self.pitch))
        lines += ["formant " + " ".join(str(v) for v in (k, *row)) for k, row in enumerate(self.formants)]
        for key in ("flutter", "roughness", "voicing"):
            if getattr(self, key) is not None:
                lines.append(f"{key} {getattr(self, key)}")
        for key in ("consonants", "echo", "breath", "breathw", "tone"):
            values = getattr(self, key)
            if values:
                lines.append(f"{key} " + " ".join(str(v) for v in values))
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, name: str, text: str) -> Variant:
        """Read a variant file; keywords other than the fields above (e.g. ``stressAdd``) are left out."""
        f: dict = {}
        formants: dict[int, tuple[int, int, int, int]] = {}
        for line in text.splitlines():
            words = line.split("//")[0].split()
            if not words or line.lstrip().startswith("#"):
                continue
            key, values = words[0], words[1:]
            try:
                nums = [int(v) for v in values]
            except ValueError:
                nums = []
            if key == "gender" and values:
                f["gender"] = values[0].lower()
            elif key == "formant" and len(nums) >= 4:
                formants[nums[0]] = (*nums[1:4], nums[4] if len(nums) > 4 else 0)
            elif key in ("flutter", "roughness", "voicing", "klatt") and nums:
                f[key] = nums[0]
            elif key in ("pitch", "consonants", "echo") and nums:
                f[key] = (nums[0], nums[1] if len(nums) > 1 else nums[0])
            elif key in ("breath", "breathw", "tone") and nums:
                f[key] = tuple(nums)
        if formants:
            f["formants"] = tuple(formants.get(k, (100, 100, 100, 0)) for k in range(max(formants) + 1))
        return cls(name=name, **f)


def bundled_data_dir() -> Path:
    """espeakng-loader's ``espeak-ng-data`` folder."""
    try:
        import espeakng_loader
    except ImportError:  # pragma: no cover - dependency of the package
        raise FacerlError("espeakng-loader is not installed: pip install espeakng-loader") from None
    return Path(espeakng_loader.get_data_path())


@functools.cache
def bundled_variant(name: str) -> Variant:
    """One of the variants shipped with eSpeak NG (``m1``-``m7``, ``f1``-``f5``, ``klatt``-``klatt6``, ...)."""
    path = bundled_data_dir() / "voices" / "!v" / name
    if not path.is_file():
        raise FacerlError(f"eSpeak NG has no voice variant {name!r}")
    return Variant.parse(name, path.read_text(encoding="utf-8", errors="replace"))


def engine_version() -> str:
    """e.g. ``eSpeak NG 1.52.0 (espeakng-loader 0.2.4)``."""
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    version = (lib.espeak_Info(None) or b"").decode(errors="replace").split()
    return f"eSpeak NG {version[0] if version else ''} (espeakng-loader {metadata.version('espeakng-loader')})"


def write_data_dir(root: str | os.PathLike, variants: Iterable[Variant]) -> Path:
    """An eSpeak data folder at ``root`` (created if needed, must hold no variants yet): the bundled data,
    linked not copied, with ``variants`` as its only ``voices/!v/<name>`` files. Speak from it with
    ``Espeak.get(root)``.

    The bundled variants are left out: eSpeak scans every voice file when it selects a voice and stops at
    349 (141 are languages), so they would crowd out ours.
    """
    root, src = Path(root), bundled_data_dir()
    variants = list(variants)
    if len(str(root.resolve())) > _N_PATH_HOME - 40:
        raise FacerlError(f"eSpeak data folder path too long for eSpeak NG ({root}); set TMPDIR to a short path")
    n_languages = sum(1 for p in (src / "lang").rglob("*") if p.is_file())
    if n_languages + len(variants) > _MAX_VOICES:
        raise FacerlError(f"eSpeak NG can list at most {_MAX_VOICES - n_languages} custom variants at once, "
                          f"got {len(variants)}")
    if len({v.name for v in variants}) != len(variants):
        raise FacerlError("eSpeak variant names must be unique")
    variant_dir = root / "voices" / "!v"
    variant_dir.mkdir(parents=True)
    for entry in src.iterdir():
        if entry.name != "voices":
            os.symlink(entry, root / entry.name)
    for variant in variants:
        (variant_dir / variant.name).write_text(variant.text(), encoding="utf-8")
    return root


@dataclass
class Utterance:
    audio: np.ndarray  # (S,) float32, 16 kHz mono
    phones: list[Phone]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


class Espeak:
    """One synthesiser per process (the library keeps global state), speaking from one data folder."""

    _instance: Espeak | None = None

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        bundled = bundled_data_dir()  # a one-line error when espeakng-loader is missing
        import espeakng_loader

        self.data_dir = Path(data_dir) if data_dir is not None else bundled
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        data = str(self.data_dir).encode()
        if len(data) >= _N_PATH_HOME - 40:
            raise FacerlError(f"eSpeak data folder path too long for eSpeak NG: {self.data_dir}")
        self.engine_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INIT_PHONEME_EVENTS)
        if self.engine_rate <= 0:
            raise FacerlError("eSpeak NG failed to initialise")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _Callback(self._on_audio)  # keep a reference: ctypes must not free it
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls, data_dir: str | os.PathLike | None = None) -> Espeak:
        """The process's synthesiser; asking for another data folder restarts the library on it."""
        wanted = Path(data_dir) if data_dir is not None else bundled_data_dir()
        if cls._instance is not None and cls._instance.data_dir != wanted:
            cls._instance.lib.espeak_Terminate()
            cls._instance = None
        if cls._instance is None:
            cls._instance = cls(wanted)
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
        _, plus, variant = voice.name.partition("+")
        # eSpeak silently ignores a variant it cannot find: refuse instead of speaking in the default voice
        if plus and not variant.isdigit() and not (self.data_dir / "voices" / "!v" / variant).is_file():
            raise FacerlError(f"unknown eSpeak voice variant {variant!r} in {self.data_dir} "
                              "(custom variants need Espeak.get(write_data_dir(...)))")
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise FacerlError(f"unknown eSpeak voice {voice.name!r}")
        for param, value in ((_RATE, voice.rate), (_VOLUME, voice.volume), (_PITCH, voice.pitch),
                             (_RANGE, voice.pitch_range)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks, self._events = [], []
        # breath noise (and Klatt's noise source) come from eSpeak's random generator, whose start differs
        # between processes (measured): a fixed seed per utterance keeps the audio reproducible
        self.lib.espeak_ng_SetRandSeed(_RAND_SEED)
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
