"""Tests for facerl.speech.phoneset."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from facerl.speech.phoneset import (
    CONVERTERS,
    PHONE_CLASS,
    PHONE_CLASSES,
    PHONES,
    UnknownPhoneError,
    convert,
    from_arpabet,
    from_espeak,
    from_ipa,
    from_xsampa,
)
from facerl.speech.sentences import make_sentences

# --------------------------------------------------------------------------
# Phone set and classes
# --------------------------------------------------------------------------


def test_phone_set():
    assert len(PHONES) == 40
    assert len(set(PHONES)) == 40
    assert PHONES[-1] == "SIL"
    assert all(p.isupper() and p.isalpha() for p in PHONES)


def test_every_phone_has_one_known_class():
    assert set(PHONE_CLASS) == set(PHONES)
    assert set(PHONE_CLASS.values()) == set(PHONE_CLASSES)


@pytest.mark.parametrize(
    ("phone", "cls"),
    [("P", "bilabial"), ("B", "bilabial"), ("M", "bilabial"), ("F", "labiodental"),
     ("V", "labiodental"), ("TH", "dental"), ("SH", "postalveolar"), ("NG", "velar"),
     ("HH", "glottal"), ("R", "rhotic"), ("W", "glide_round"), ("Y", "glide_spread"),
     ("AA", "open_vowel"), ("AW", "open_vowel"), ("UW", "rounded_vowel"),
     ("OY", "rounded_vowel"), ("IY", "spread_vowel"), ("ER", "rhotic_vowel"),
     ("SIL", "silence")],
)
def test_phone_class_examples(phone, cls):
    assert PHONE_CLASS[phone] == cls


# --------------------------------------------------------------------------
# Converters on hand-written examples
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "phone"),
    [("AH0", "AH"), ("IY1", "IY"), ("er2", "ER"), ("ng", "NG"), ("B", "B"),
     ("sil", "SIL"), ("SIL", "SIL"), ("sp", "SIL"), ("spn", "SIL"), ("", "SIL"),
     ("AX0", "AH"), ("DX", "T")],
)
def test_from_arpabet(symbol, phone):
    assert from_arpabet(symbol) == phone


@pytest.mark.parametrize(
    ("symbol", "phone"),
    [("{", "AE"), ("A", "AA"), ("A:", "AA"), ("V", "AH"), ("@", "AH"), ("3`", "ER"),
     ("3:", "ER"), ("I", "IH"), ("i:", "IY"), ('"i:', "IY"), ("%I", "IH"),
     ("aI", "AY"), ("aU", "AW"), ("OI", "OY"), ("eI", "EY"), ("oU", "OW"), ("@U", "OW"),
     ("O:", "AO"), ("U", "UH"), ("u:", "UW"), ("E", "EH"),
     ("tS", "CH"), ("dZ", "JH"), ("T", "TH"), ("D", "DH"), ("S", "SH"), ("Z", "ZH"),
     ("s", "S"), ("z", "Z"), ("N", "NG"), ("j", "Y"), ("r\\", "R"), ("h", "HH"),
     ("?", "T"), ("4", "T"), ("t_h", "T"), ("n=", "N"), ("_", "SIL"), ("sil", "SIL")],
)
def test_from_xsampa(symbol, phone):
    assert from_xsampa(symbol) == phone


@pytest.mark.parametrize(
    ("symbol", "phone"),
    [("æ", "AE"), ("ɑ", "AA"), ("ɑː", "AA"), ("ʌ", "AH"), ("ə", "AH"), ("ɔ", "AO"),
     ("aʊ", "AW"), ("aɪ", "AY"), ("ɛ", "EH"), ("ɝ", "ER"), ("ɚ", "ER"), ("ɜː", "ER"),
     ("eɪ", "EY"), ("ɪ", "IH"), ("i", "IY"), ("ˈiː", "IY"), ("ˌoʊ", "OW"), ("ɔɪ", "OY"),
     ("ʊ", "UH"), ("u", "UW"), ("ʃ", "SH"), ("ʒ", "ZH"), ("θ", "TH"), ("ð", "DH"),
     ("ŋ", "NG"), ("tʃ", "CH"), ("t͡ʃ", "CH"), ("dʒ", "JH"), ("ɹ", "R"), ("j", "Y"),
     ("ʔ", "T"), ("ɾ", "T"), ("ɡ", "G"), ("g", "G"), ("tʰ", "T"), ("ɫ", "L"),
     ("n̩", "N"), ("ç", "HH"), ("aj", "AY"), ("ow", "OW"), ("sil", "SIL")],
)
def test_from_ipa(symbol, phone):
    assert from_ipa(symbol) == phone


@pytest.mark.parametrize(
    ("symbol", "phones"),
    [("@", ("AH",)), ("'a", ("AE",)), (",aI", ("AY",)), ("=V", ("AH",)),
     ("@L", ("AH", "L")), ("A@", ("AA", "R")), ("'O@", ("AO", "R")), ("3:", ("ER",)),
     ("aI@", ("AY", "ER")), ("i@3", ("IY", "R")), ("t#", ("T",)), ("?", ("T",)),
     ("n-", ("AH", "N")), ("r-", ("R",)), ("l/", ("L",)), (";", ("Y",)),
     ("tS", ("CH",)), ("dZ", ("JH",)), ("N", ("NG",)), ("Z", ("ZH",)),
     ("_", ("SIL",)), ("_:", ("SIL",)), ("_!", ("SIL",)), ("_^", ("SIL",)), (".", ("SIL",))],
)
def test_from_espeak(symbol, phones):
    assert from_espeak(symbol) == phones


ESPEAK_ENGLISH_MNEMONICS = (  # noqa: SIM905 - eSpeak's listing, kept as written there
    "@ @2 @5 @L 3 3: a a# A: A@ aa aI aI@ aI3 aU aU@ e e@ eI E E2 E@ i i: i@ i@3 I I# I2 "
    "0 0# O O: O@ o@ OI oU oU# u u: U U@ V Uu u@ ; "
    "p b t d k g f v T D s z S Z h tS dZ m n N l r w j t# d# r- l/ n- m- ? x z# s2 "
    "_ _: _! _^ ."
).split()


@pytest.mark.parametrize("symbol", ESPEAK_ENGLISH_MNEMONICS)
def test_espeak_mnemonic_maps_to_one_or_two_canonical_phones(symbol):
    phones = from_espeak(symbol)
    assert 1 <= len(phones) <= 2
    assert set(phones) <= set(PHONES)


def test_converters_return_canonical_phones():
    samples = {"arpabet": ["AA1", "zh", "sp"], "xsampa": ["{", "Z", "r\\"],
               "ipa": ["æ", "ʒ", "ɹ"], "facerl": list(PHONES)}
    assert set(CONVERTERS) == set(samples)
    for alphabet, symbols in samples.items():
        for symbol in symbols:
            assert convert(symbol, alphabet) in PHONES
            assert convert(symbol, alphabet) == CONVERTERS[alphabet](symbol)


def test_facerl_alphabet_is_identity_on_phones():
    assert [convert(p, "facerl") for p in PHONES] == list(PHONES)
    with pytest.raises(UnknownPhoneError):
        convert("AH0", "facerl")


def test_convert_rejects_unknown_alphabet():
    with pytest.raises(ValueError, match="klingon"):
        convert("AA", "klingon")


@pytest.mark.parametrize(
    ("converter", "alphabet", "symbol"),
    [(from_arpabet, "arpabet", "XYZ1"), (from_xsampa, "xsampa", "Q\\`"),
     (from_ipa, "ipa", "ʘ"), (from_espeak, "espeak", "zz9"),
     (from_arpabet, "arpabet", "A\nB")],
)
def test_unknown_symbol_raises_one_line_error(converter, alphabet, symbol):
    with pytest.raises(UnknownPhoneError) as info:
        converter(symbol)
    message = str(info.value)
    assert "\n" not in message
    assert repr(symbol) in message
    assert alphabet in message
    assert info.value.symbol == symbol
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------
# Real eSpeak NG output
# --------------------------------------------------------------------------

# eSpeak NG keeps one global synthesis callback per process, so the probe runs in
# a child interpreter: it must not replace the callback of facerl.speech.espeak
# in this one.  The child reads {"voices": [...], "sentences": [...]} as JSON on
# stdin and prints {voice: [mnemonic, ...]}.
_PROBE_SCRIPT = r"""
import ctypes, json, sys
import espeakng_loader

class EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

class Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", EventId)]

Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event))
EVENT_END, EVENT_PHONEME = 0, 7

lib = ctypes.CDLL(espeakng_loader.get_library_path())
lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                             ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
# 2 = AUDIO_OUTPUT_SYNCHRONOUS, option 1 = espeakINITIALIZE_PHONEME_EVENTS
if lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 1) <= 0:
    sys.exit("eSpeak NG failed to initialise")

mnemonics = set()

@Callback
def on_synth(wav, n_samples, events):
    i = 0
    while events[i].type != EVENT_END:
        if events[i].type == EVENT_PHONEME:
            mnemonics.add(events[i].id.string.decode())
        i += 1
    return 0

lib.espeak_SetSynthCallback(on_synth)
request = json.load(sys.stdin)
result = {}
for voice in request["voices"]:
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        sys.exit(f"unknown eSpeak voice {voice!r}")
    mnemonics.clear()
    for text in request["sentences"]:
        data = text.encode()
        # position 0, POS_CHARACTER, no end position, espeakCHARS_UTF8
        lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None)
        lib.espeak_Synchronize()
    result[voice] = sorted(mnemonics)
json.dump(result, sys.stdout)
"""


def espeak_phoneme_mnemonics(sentences: list[str], voices: list[str]) -> dict[str, set[str]]:
    """Phoneme mnemonics that eSpeak NG's phoneme events report for ``sentences``, per voice."""
    pytest.importorskip("espeakng_loader")
    request = json.dumps({"voices": voices, "sentences": sentences})
    child = subprocess.run([sys.executable, "-c", _PROBE_SCRIPT], input=request, check=False,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    return {voice: set(found) for voice, found in json.loads(child.stdout).items()}


@pytest.fixture(scope="module")
def espeak_mnemonics() -> dict[str, set[str]]:
    return espeak_phoneme_mnemonics(make_sentences(200, seed=1234), ["en-us", "en"])


@pytest.mark.parametrize("voice", ["en-us", "en"])
def test_observed_espeak_mnemonics_all_map(espeak_mnemonics, voice):
    observed = espeak_mnemonics[voice]
    assert {"p", "b", "m"} <= {m.lstrip("',=%") for m in observed}, "probe produced no phonemes"
    unmapped = []
    for mnemonic in sorted(observed):
        try:
            phones = from_espeak(mnemonic)
        except UnknownPhoneError:
            unmapped.append(mnemonic)
            continue
        assert 1 <= len(phones) <= 2 and set(phones) <= set(PHONES), mnemonic
    assert not unmapped, f"eSpeak ({voice}) mnemonics without a mapping: {unmapped}"


def test_sentences_cover_every_phone_in_espeak_en_us(espeak_mnemonics):
    covered = {p for m in espeak_mnemonics["en-us"] for p in from_espeak(m)}
    assert covered == set(PHONES), f"missing: {sorted(set(PHONES) - covered)}"
