"""Offline forced alignment of a recording to its transcript: words -> phones with times.

pocketsphinx 5.1.1 (CMU Sphinx) with the en-us acoustic model and CMU dictionary that ship inside its
wheel, so nothing is downloaded. Two passes, as pocketsphinx prescribes: ``set_align_text`` + decode
finds the words (an FSG search through the transcript, with optional silences and noises between
words); ``set_alignment`` + decode again finds the phones inside them, in 10 ms frames.

Dimensions: S audio samples (16 kHz), F pocketsphinx frames (10 ms hop, 25.6 ms window).

Transcripts are normalised (:func:`normalise_text`); words missing from the CMU dictionary are reported
unless they are regular inflections of words in it (-s, -es, -'s, -ed), whose pronunciation is derived.
A user dictionary adds words (or alternative pronunciations of known ones). A transcript that does not
match the audio is refused: either the search cannot reach its last word, or speech is left over in the
silence and noise fillers between words. A minute of speech aligns in about 4 s (2 CPU cores).

    >>> phones = align_text(read_wav("speech.wav"), "Bob met a happy man.")   # doctest: +SKIP
    >>> " ".join(p.phone for p in phones)                                      # doctest: +SKIP
    'B AA B M EH T AH HH AE P IY M AE N'
"""

from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path

import numpy as np

from facerl.audio import SAMPLE_RATE
from facerl.errors import FacerlError
from facerl.speech.phoneset import SIL, UnknownPhoneError, convert
from facerl.speech.timing import Phone, pad_to

__all__ = ["align_text", "normalise_text", "read_dictionary"]

FRAME_S = 0.010  # pocketsphinx frame hop (-frate 100)
# Frame f is the 25.6 ms window starting at f * 10 ms; a change between frames f-1 and f lies halfway
# between their window centres, (25.6 - 10) / 2 = 7.8 ms after f * 10 ms. Measured on eSpeak speech
# (benchmarks/aligner_accuracy.py): 73.5 % -> 82 % of boundaries within 20 ms, bias -12 -> -5 ms.
FRAME_OFFSET_S = 0.0078
# pocketsphinx's noise removal and log spectra misbehave on digital silence (TTS, gated recordings):
# 27 of 240 eSpeak sentences failed to align, 0 with this -70 dBFS floor (~10 LSB of 16-bit), which
# any real recording exceeds anyway. A fixed seed keeps the alignment deterministic.
NOISE_FLOOR = 3e-4
# Transcript that leaves words out: the aligner parks the untranscribed speech in silence/noise
# fillers. More than this much loud audio (within LOUD_DB of the loud frames) inside fillers is an error.
MAX_LOUD_FILLER_S = 0.5
LOUD_DB = 20.0
MIN_AUDIO_S = 0.1
# Search beams wider than pocketsphinx's defaults (1e-48, 1e-48, 7e-29): a forced alignment has few
# paths, and the defaults pruned the right one in 6 of 240 eSpeak sentences (0 with these), at
# ~40 % more time (~0.1 s per sentence).
SEARCH_BEAMS = {"beam": 1e-80, "pbeam": 1e-80, "wbeam": 1e-60}

_DICT_HELP = ("pass --dict FILE with one line per word, 'WORD  PH1 PH2 ...' (CMU dictionary format, "
              "ARPAbet phones, stress digits allowed)")
_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
            "nine": "ninth", "twelve": "twelfth"}
_NUMBER = re.compile(r"^(\d{1,3})(st|nd|rd|th)?$")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at "}


def align_text(audio: np.ndarray, text: str, dictionary: str | Path | None = None,
               source: str | Path | None = None) -> list[Phone]:
    """Phones of ``audio`` (S,) float32 at 16 kHz speaking ``text``, contiguous from 0 to the audio's end.

    ``dictionary``: extra pronunciations, one ``WORD  PH1 PH2 ...`` line each (CMU format). ``source``
    names the recording in error messages. Raises :class:`FacerlError` for words the dictionaries lack
    (all of them, in one message), numbers it cannot spell, and audio that does not match the text.
    """
    where = f"{source}: " if source else ""
    if audio.ndim != 1:
        raise FacerlError(f"{where}the aligner takes mono audio (S,), got shape {audio.shape}")
    duration_s = len(audio) / SAMPLE_RATE
    if duration_s < MIN_AUDIO_S:
        raise FacerlError(f"{where}{duration_s:.2f} s of audio is too short to align (at least {MIN_AUDIO_S} s)")
    words = normalise_text(text, where)
    extra = read_dictionary(dictionary) if dictionary is not None else {}
    decoder = _decoder(tuple(sorted((w, tuple(p)) for w, prons in extra.items() for p in prons)))
    _check_vocabulary(decoder, words, where)

    rng = np.random.default_rng(0)
    noisy = audio.astype(np.float32) + NOISE_FLOOR * rng.standard_normal(len(audio)).astype(np.float32)
    pcm = (np.clip(noisy, -1.0, 1.0) * 32767.0).round().astype(np.int16).tobytes()  # (S,) 16-bit bytes
    transcript = " ".join(words)
    failed = FacerlError(f"{where}could not align the speech to its transcript ({duration_s:.1f} s, "
                         f"{len(words)} words): does the text say exactly what is spoken?")
    try:
        decoder.set_align_text(transcript)
        _decode(decoder, pcm)
        hyp = decoder.hyp()
        if hyp is None or hyp.hypstr != transcript:  # the search never reached the transcript's last word
            raise failed
        decoder.set_alignment()
        _decode(decoder, pcm)
        segments = [(p.name, p.start, p.start + p.duration) for w in decoder.get_alignment() for p in w]
    except RuntimeError:  # pocketsphinx's way of saying the search found no path
        _decoder.cache_clear()  # it may be left mid-utterance: the next alignment starts from a fresh one
        raise failed from None
    _check_coverage(audio, segments, where)
    return _to_phones(segments, duration_s)


def normalise_text(text: str, where: str = "") -> list[str]:
    """A transcript -> lower-case dictionary words: punctuation dropped, hyphens split, accents stripped,
    curly apostrophes straightened, 0-999 and 1st-999th spelled out. Other numbers are an error."""
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    words, unspellable = [], []
    for token in re.findall(r"\d+(?:[.,:/]\d+)+|[\w']+", text):  # 3.5, 1,000, 7:30 stay one token
        token = token.strip("'")  # quotation marks, not contractions
        if not token:
            continue
        if any(ch.isdigit() for ch in token):
            m = _NUMBER.match(token)
            if m is None:
                unspellable.append(token)
            else:
                words += _spell(int(m[1]), ordinal=m[2] is not None).split()
        else:
            words.append(token)
    if unspellable:
        raise FacerlError(f"{where}cannot tell how to say {', '.join(map(repr, unspellable))}: "
                          "write such numbers in words in the transcript (e.g. 'nineteen ninety nine')")
    if not words:
        raise FacerlError(f"{where}the transcript has no words")
    return words


def read_dictionary(path: str | Path) -> dict[str, list[list[str]]]:
    """``WORD  PH1 PH2 ...`` lines (``WORD(2)`` for alternatives, ``;;;`` or ``#`` comments) -> {word: prons}.

    Phones are ARPAbet with optional stress digits; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FacerlError(f"pronunciation dictionary not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise FacerlError(f"{path} is not UTF-8 text") from None
    entries: dict[str, list[list[str]]] = {}
    for line_no, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith((";;;", "#")):
            continue
        word = re.sub(r"\(\d+\)$", "", fields[0]).translate(_APOSTROPHES).lower()
        if len(fields) < 2 or not re.fullmatch(r"[\w'][\w'.-]*", word):
            raise FacerlError(f"{path}: line {line_no} is not 'WORD  PH1 PH2 ...': {line.strip()!r}")
        try:
            phones = [convert(symbol, "arpabet") for symbol in fields[1:]]
        except UnknownPhoneError as exc:
            raise FacerlError(f"{path}: line {line_no}: {exc}") from None
        if SIL in phones:
            raise FacerlError(f"{path}: line {line_no}: a pronunciation cannot contain a pause ({line.strip()!r})")
        entries.setdefault(word, []).append(phones)
    if not entries:
        raise FacerlError(f"pronunciation dictionary has no entries: {path}")
    return entries


@functools.lru_cache(maxsize=4)
def _decoder(extra: tuple[tuple[str, tuple[str, ...]], ...] = ()):
    """One decoder per set of extra pronunciations, built once per process (loading takes ~0.2 s); the
    plain CMU one never gets a user's words, so what a --dict adds does not leak into later alignments."""
    try:
        from pocketsphinx import Decoder, get_model_path
    except ImportError:  # pragma: no cover - dependency of the package
        raise FacerlError("pocketsphinx is not installed: pip install pocketsphinx==5.1.1") from None
    model = Path(get_model_path())
    # lm=None: no language model, alignment needs only the acoustic model and the dictionary.
    # bestpath=False: the lattice re-scoring pass drops the last words of an alignment or fails in
    # end_utt (72 of 240 eSpeak sentences fail with it, 0 without).
    decoder = Decoder(hmm=str(model / "en-us" / "en-us"), dict=str(model / "en-us" / "cmudict-en-us.dict"),
                      lm=None, bestpath=False, loglevel="FATAL", **SEARCH_BEAMS)
    for word, phones in extra:
        if decoder.lookup_word(word) is not None:  # a known word: the user's spelling becomes an alternative
            n = 2
            while decoder.lookup_word(f"{word}({n})") is not None:
                n += 1
            word = f"{word}({n})"
        decoder.add_word(word, " ".join(phones), True)
    return decoder


def _check_vocabulary(decoder, words: list[str], where: str) -> None:
    """Every word needs a pronunciation; regular inflections of dictionary words are derived from the stem."""
    missing = []
    for word in dict.fromkeys(words):
        if decoder.lookup_word(word) is not None:
            continue
        derived = _inflected(decoder, word)
        if derived is None:
            missing.append(word)
        else:
            decoder.add_word(word, derived, True)  # the same for every caller, so the cache may keep it
    if missing:
        listed = ", ".join(repr(w.upper()) for w in missing)
        noun = "word is" if len(missing) == 1 else f"{len(missing)} words are"
        raise FacerlError(f"{where}{noun} not in the pronunciation dictionary: {listed}; {_DICT_HELP}, "
                          "e.g. 'TOMATO  T AH0 M EY1 T OW2'")


def _inflected(decoder, word: str) -> str | None:
    """The pronunciation of -'s, -s, -es, -ies, -d, -ed, -ied (hummed: hum + D) from a dictionary stem."""
    if word.endswith(("'s", "s")):
        stems = [word[:-2]] if word.endswith("'s") else [word[:-1]]
        if word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh", "o")):
            stems.append(word[:-2])  # boxes, thermoses, buffaloes (but hopes is hope + s)
        if word.endswith("ies"):
            stems.append(word[:-3] + "y")
        suffix = _s_suffix
    elif word.endswith("d"):
        stems = [word[:-1]]  # hoped, baked
        if word.endswith("ied"):
            stems.append(word[:-3] + "y")
        if word.endswith("ed"):
            stems.append(word[:-2])  # wanted
            if len(word) > 4 and word[-3] == word[-4]:
                stems.append(word[:-3])  # hummed, hopped
        suffix = _d_suffix
    else:
        return None
    for stem in stems:
        phones = decoder.lookup_word(stem) if stem else None
        if phones is not None:
            return f"{phones} {suffix(phones.split()[-1])}"
    return None


def _s_suffix(last_phone: str) -> str:
    """English -s: IH Z after sibilants, S after other voiceless consonants, Z otherwise."""
    if last_phone in ("S", "Z", "SH", "ZH", "CH", "JH"):
        return "IH Z"
    return "S" if last_phone in ("P", "T", "K", "F", "TH") else "Z"


def _d_suffix(last_phone: str) -> str:
    """English -ed: IH D after T and D, T after other voiceless consonants, D otherwise."""
    if last_phone in ("T", "D"):
        return "IH D"
    return "T" if last_phone in ("P", "K", "F", "TH", "S", "SH", "CH") else "D"


def _decode(decoder, pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)  # full_utt: cepstral mean over the whole clip (-cmn batch)
    decoder.end_utt()


def _is_filler(name: str) -> bool:
    """pocketsphinx's silence and noise units (SIL, +NSN+, +SPN+, ...)."""
    return name == "SIL" or name.startswith("+")


def _check_coverage(audio: np.ndarray, segments: list[tuple[str, int, int]], where: str) -> None:
    """A transcript that leaves words out still aligns, with the extra speech inside fillers: refuse it."""
    hop = int(FRAME_S * SAMPLE_RATE)
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)  # (F, 160)
    level_db = 10.0 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)  # (F,)
    loud = level_db > np.percentile(level_db, 95) - LOUD_DB  # (F,)
    in_filler = np.zeros_like(loud)
    for name, start, end in segments:
        if _is_filler(name):
            in_filler[start:end] = True
    loud_filler_s = float(np.sum(loud & in_filler)) * FRAME_S
    if loud_filler_s > MAX_LOUD_FILLER_S:
        raise FacerlError(f"{where}{loud_filler_s:.1f} s of speech fall outside the transcript's words: "
                          "does the text say everything that is spoken?")


def _to_phones(segments: list[tuple[str, int, int]], duration_s: float) -> list[Phone]:
    """pocketsphinx phones (name, first frame, end frame) -> contiguous canonical phones over [0, duration_s]."""
    phones: list[Phone] = []
    for name, start, end in segments:
        symbol = SIL if _is_filler(name) else convert(name, "arpabet")
        lo = 0.0 if not phones else min(start * FRAME_S + FRAME_OFFSET_S, duration_s)
        hi = min(end * FRAME_S + FRAME_OFFSET_S, duration_s)
        if phones and lo > phones[-1].end_s + 1e-9:  # a gap between words is a pause
            phones.append(Phone(phones[-1].end_s, lo, SIL))
        if hi <= lo:
            continue
        if phones and phones[-1].phone == symbol == SIL:
            phones[-1] = Phone(phones[-1].start_s, hi, SIL)
        else:
            phones.append(Phone(lo, hi, symbol))
    if phones and (phones[-1].phone == SIL or duration_s - phones[-1].end_s < FRAME_S):
        phones[-1] = Phone(phones[-1].start_s, duration_s, phones[-1].phone)  # the last window's spare samples
    return pad_to(phones, duration_s)


def _spell(n: int, ordinal: bool = False) -> str:
    """0..999 in words ('one hundred twenty three'); ``ordinal`` -> 'one hundred twenty third'."""
    if n < 20:
        words = _ONES[n]
    elif n < 100:
        words = _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    else:
        words = _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + _spell(n % 100))
    if not ordinal:
        return words
    head, _, last = words.rpartition(" ")
    last = _ORDINAL.get(last, last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return f"{head} {last}".strip()

