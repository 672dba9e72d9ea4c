"""facerl's canonical phone set and converters from other phonetic alphabets.

Canonical phones
----------------
The canonical set is ARPAbet without stress digits (the 39 phones of the CMU
Pronouncing Dictionary) plus ``SIL`` for silence and pauses.  Every converter
maps a foreign symbol onto this set or raises :class:`UnknownPhoneError`.

Converters
----------
* :func:`from_arpabet` -- CMU/MFA ARPAbet, any case, stress digits allowed.
  A few TIMIT-style extensions are folded in (``AX``->AH, ``AXR``->ER,
  ``IX``->IH, ``UX``->UW, ``DX``->T, ``Q``->T, ``EL``/``EM``/``EN``/``NX`` ->
  L/M/N/N) and MFA pause labels (``sil``, ``sp``, ``spn``, empty) become SIL.
* :func:`from_xsampa` -- X-SAMPA as used for English; stress (``"`` ``%``),
  length (``:``) and a few diacritics (``_h`` ``_w`` ``_j`` ``_d`` ``=``) are
  stripped before lookup.  X-SAMPA is case-sensitive (``S`` is SH, ``s`` is S).
* :func:`from_ipa` -- common English IPA, including the phones produced by the
  Montreal Forced Aligner's English IPA models (``aj``, ``ow``, ``ɫ``, ``tʰ``,
  ``ɟ`` ...).  Stress, length, tie bars and common diacritics are stripped.
* :func:`from_espeak` -- eSpeak NG English phoneme mnemonics as reported by its
  phoneme events (voices ``en`` and ``en-us``).  Returns one *or two*
  canonical phones, because several eSpeak vowels fold a following ``r`` or a
  syllabic consonant into one mnemonic.

The X-SAMPA and IPA converters return a single phone, so symbols that would
need two canonical phones (British centring diphthongs such as ``I@``/``ɪə``)
are rejected rather than silently truncated.

Mapping choices
---------------
* The target is *American* ARPAbet, so British-only contrasts are merged:
  ɒ (eSpeak ``0``) -> AA, BATH vowel (eSpeak ``aa``) -> AE, eSpeak ``3``
  (r-coloured schwa in en-us, plain schwa in en) -> ER.
* Glottal stop (``?``, ``ʔ``) and flaps (``4``, ``ɾ``, eSpeak ``t#``) -> T: in
  English they are almost always allophones of /t/, and CMU spells them T.
  eSpeak's ``d#`` (flapped /d/) -> D.
* Velar fricative x (loch, Bach) -> K; palatal fricative ç -> HH.
* Syllabic consonants -> AH + consonant (eSpeak ``@L``, ``n-``, ``m-``), as
  CMU spells "bottle" and "button"; the single-phone converters map IPA/X-SAMPA
  syllabic consonants to the bare consonant.
* eSpeak rhotic vowels -> vowel + R (``A@`` -> AA R, ``O@`` -> AO R,
  ``e@`` -> EH R, ``U@`` -> UH R, ``i@3`` -> IY R); triphthongs with a schwa
  offglide -> diphthong + ER (``aI@`` fire -> AY ER, ``aU@`` hour -> AW ER);
  non-rhotic ``i@`` (idea, really) -> IY AH.
* eSpeak ``;`` (the palatal glide it inserts between an i-vowel and a following
  vowel, "the apple", "radio") -> Y.

Phone classes
-------------
:data:`PHONE_CLASS` groups phones by the articulator shape that drives a
viseme.  Diphthongs are classified by their onset (the longer, more visible
part): AW/AY are open vowels, OY/OW are rounded, EY is spread.  ER is
``rhotic_vowel``; the consonant R is ``rhotic`` (lip-rounded approximant in
American English).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

__all__ = [
    "CONVERTERS",
    "PHONES",
    "PHONE_CLASS",
    "PHONE_CLASSES",
    "UnknownPhoneError",
    "convert",
    "from_arpabet",
    "from_espeak",
    "from_facerl",
    "from_ipa",
    "from_xsampa",
]

SIL = "SIL"

PHONES: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH",
    "EH", "ER", "EY", "F", "G", "HH", "IH", "IY", "JH", "K",
    "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH",
    "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH", SIL,
)
_PHONE_SET = frozenset(PHONES)


class UnknownPhoneError(ValueError):
    """A symbol that has no canonical equivalent in the given source alphabet."""

    def __init__(self, symbol: str, alphabet: str) -> None:
        self.symbol = symbol
        self.alphabet = alphabet
        # repr() keeps the message on one line whatever the symbol contains.
        super().__init__(f"unknown {alphabet} phone symbol {symbol!r}")


# --------------------------------------------------------------------------
# Phone classes (viseme targets)
# --------------------------------------------------------------------------

_CLASS_MEMBERS: dict[str, tuple[str, ...]] = {
    "bilabial": ("P", "B", "M"),
    "labiodental": ("F", "V"),
    "dental": ("TH", "DH"),
    "alveolar": ("T", "D", "N", "S", "Z", "L"),
    "postalveolar": ("SH", "ZH", "CH", "JH"),
    "velar": ("K", "G", "NG"),
    "glottal": ("HH",),
    "rhotic": ("R",),
    "glide_round": ("W",),
    "glide_spread": ("Y",),
    "open_vowel": ("AA", "AE", "AH", "AW", "AY"),
    "rounded_vowel": ("AO", "OW", "UW", "UH", "OY"),
    "spread_vowel": ("IY", "IH", "EY", "EH"),
    "rhotic_vowel": ("ER",),
    "silence": (SIL,),
}

PHONE_CLASSES: tuple[str, ...] = tuple(_CLASS_MEMBERS)
PHONE_CLASS: dict[str, str] = {
    phone: cls for cls, members in _CLASS_MEMBERS.items() for phone in members
}


# --------------------------------------------------------------------------
# ARPAbet
# --------------------------------------------------------------------------

_PAUSE_LABELS = frozenset({"", "sil", "sp", "spn", "pau", "<sil>"})

_ARPABET_EXTRA: dict[str, str] = {
    "AX": "AH", "AXR": "ER", "IX": "IH", "UX": "UW",
    "DX": "T", "Q": "T", "NX": "N", "EL": "L", "EM": "M", "EN": "N",
    "HV": "HH",
}


def from_arpabet(symbol: str) -> str:
    """Map an ARPAbet symbol (any case, optional stress digit) to a canonical phone."""
    text = symbol.strip()
    if text.lower() in _PAUSE_LABELS:
        return SIL
    core = text.upper().rstrip("012")
    if core in _PHONE_SET:
        return core
    if core in _ARPABET_EXTRA:
        return _ARPABET_EXTRA[core]
    raise UnknownPhoneError(symbol, "arpabet")


# --------------------------------------------------------------------------
# X-SAMPA
# --------------------------------------------------------------------------

_XSAMPA: dict[str, str] = {
    # monophthongs
    "{": "AE", "a": "AE", "A": "AA", "Q": "AA",
    "V": "AH", "@": "AH", "6": "AH",
    "@`": "ER", "3`": "ER", "3": "ER",
    "I": "IH", "1": "IH", "i": "IY",
    "E": "EH", "e": "EH",
    "O": "AO", "o": "OW",
    "U": "UH", "u": "UW", "}": "UW",
    # diphthongs
    "eI": "EY", "aI": "AY", "aU": "AW", "OI": "OY", "oU": "OW", "@U": "OW",
    # stops and affricates
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G",
    "c": "K", "J\\": "G", "?": "T", "4": "T",
    "tS": "CH", "dZ": "JH",
    # fricatives
    "f": "F", "v": "V", "T": "TH", "D": "DH", "s": "S", "z": "Z",
    "S": "SH", "Z": "ZH", "h": "HH", "h\\": "HH", "C": "HH", "x": "K",
    # nasals
    "m": "M", "n": "N", "N": "NG", "F": "M", "J": "N",
    # approximants
    "l": "L", "5": "L", "L": "L",
    "r": "R", "r\\": "R", "r\\`": "R", "R\\": "R",
    "w": "W", "W": "W", "j": "Y", "P": "V",
    # pauses
    "_": SIL, "#": SIL, "|": SIL, "||": SIL,
}

_XSAMPA_DIACRITICS = ("_h", "_w", "_j", "_d", "_=", "_^", "=")


def from_xsampa(symbol: str) -> str:
    """Map an X-SAMPA symbol (English subset) to a canonical phone."""
    text = symbol.strip()
    if text.lower() in _PAUSE_LABELS:
        return SIL
    if text not in _XSAMPA:
        for mark in ('"', "%", ":\\", ":"):  # stress, half-long, long
            text = text.replace(mark, "")
        for mark in _XSAMPA_DIACRITICS:
            if len(text) > len(mark) and text.endswith(mark):
                text = text[: -len(mark)]
    try:
        return _XSAMPA[text]
    except KeyError:
        raise UnknownPhoneError(symbol, "xsampa") from None


# --------------------------------------------------------------------------
# IPA
# --------------------------------------------------------------------------

_IPA: dict[str, str] = {
    # monophthongs
    "æ": "AE", "a": "AE", "ɑ": "AA", "ɒ": "AA",
    "ʌ": "AH", "ə": "AH", "ɐ": "AH",
    "ɝ": "ER", "ɚ": "ER", "ɜ": "ER",
    "ɪ": "IH", "ɨ": "IH", "i": "IY",
    "ɛ": "EH", "e": "EH",
    "ɔ": "AO", "o": "OW",
    "ʊ": "UH", "u": "UW", "ʉ": "UW",
    # diphthongs (IPA and MFA spellings)
    "eɪ": "EY", "ei": "EY", "ej": "EY",
    "aɪ": "AY", "ai": "AY", "aj": "AY", "ɑɪ": "AY",
    "aʊ": "AW", "au": "AW", "aw": "AW", "æʊ": "AW",
    "ɔɪ": "OY", "ɔi": "OY", "ɔj": "OY", "oɪ": "OY",
    "oʊ": "OW", "ou": "OW", "ow": "OW", "əʊ": "OW", "əw": "OW",
    # stops and affricates
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "ɡ": "G",
    "c": "K", "ɟ": "G", "ʔ": "T", "ɾ": "T",
    "tʃ": "CH", "ʧ": "CH", "dʒ": "JH", "ʤ": "JH",
    # fricatives
    "f": "F", "v": "V", "θ": "TH", "ð": "DH", "s": "S", "z": "Z",
    "ʃ": "SH", "ʒ": "ZH", "h": "HH", "ɦ": "HH", "ç": "HH", "x": "K",
    # nasals
    "m": "M", "ɱ": "M", "n": "N", "ɲ": "N", "ŋ": "NG",
    # approximants
    "l": "L", "ɫ": "L", "ʎ": "L",
    "ɹ": "R", "r": "R", "ɻ": "R",
    "w": "W", "ʍ": "W", "j": "Y", "ʋ": "V",
    # pauses (minor and major prosodic group boundaries)
    "|": SIL, "‖": SIL,
}

# Suprasegmentals and diacritics removed before lookup (code points, so the
# combining marks are visible here).
_IPA_STRIP = {
    "\u02c8",  # ˈ primary stress
    "\u02cc",  # ˌ secondary stress
    "\u02d0",  # ː long
    "\u02d1",  # ˑ half long
    "\u0361",  # ͡ tie bar above
    "\u035c",  # ͜ tie bar below
    "\u02b0",  # ʰ aspirated
    "\u02b7",  # ʷ labialised
    "\u02b2",  # ʲ palatalised
    "\u032a",  # ̪ dental
    "\u0329",  # ̩ syllabic
    "\u030d",  # ̍ syllabic (above)
    "\u032f",  # ̯ non-syllabic
    "\u0325",  # ̥ voiceless
    "\u0303",  # ̃ nasalised
    "\u031a",  # ̚ no audible release
    ":", "'",  # ASCII stand-ins for length and stress in hand-typed IPA
}
_IPA_RHOTIC_HOOK = "\u02de"  # ˞ as in ə˞ (= ɚ)


def _normalise_ipa(symbol: str) -> str:
    # NFD splits precomposed letters so their diacritics can be dropped, but it
    # would also split ç into c + cedilla; recompose the survivors afterwards.
    text = unicodedata.normalize("NFD", symbol.strip())
    text = "".join(ch for ch in text if ch not in _IPA_STRIP)
    text = unicodedata.normalize("NFC", text)
    if text.endswith(_IPA_RHOTIC_HOOK):
        base = text[:-1]
        text = "ɚ" if base in ("ə", "ɜ") else base
    return text


def from_ipa(symbol: str) -> str:
    """Map a (common English) IPA symbol to a canonical phone."""
    if symbol.strip().lower() in _PAUSE_LABELS:
        return SIL
    text = _normalise_ipa(symbol)
    try:
        return _IPA[text]
    except KeyError:
        raise UnknownPhoneError(symbol, "ipa") from None


# --------------------------------------------------------------------------
# eSpeak NG (English)
# --------------------------------------------------------------------------

_ESPEAK: dict[str, tuple[str, ...]] = {
    # pauses
    "": (SIL,), "_": (SIL,), "_:": (SIL,), "_::": (SIL,), "_!": (SIL,),
    "_^": (SIL,), "_^_": (SIL,), "_;_": (SIL,), "_|": (SIL,), "_X1": (SIL,),
    ".": (SIL,), "||": (SIL,),
    # schwas
    "@": ("AH",), "@2": ("AH",), "@5": ("AH",), "@#": ("AH",), "@-": ("AH",),
    "@L": ("AH", "L"),
    "3": ("ER",), "3:": ("ER",), "IR": ("ER",), "VR": ("AH", "R"),
    # open vowels
    "a": ("AE",), "a2": ("AE",), "a/": ("AE",), "aa": ("AE",),
    "a#": ("AH",), "a#2": ("AH",),
    "A:": ("AA",), "A#": ("AA",), "A~": ("AA",), "A@": ("AA", "R"),
    "V": ("AH",),
    "0": ("AA",), "0#": ("AA",), "02": ("AH",),
    # front vowels
    "e": ("EH",), "e#": ("EH",), "E": ("EH",), "E#": ("EH",), "E2": ("EH",),
    "e:": ("EY",), "eI": ("EY",),
    "e@": ("EH", "R"), "E@": ("EH", "R"),
    "I": ("IH",), "I#": ("IH",), "I2": ("IH",), "I2#": ("IH",),
    "i": ("IY",), "i:": ("IY",),
    "i@": ("IY", "AH"), "i@3": ("IY", "R"),
    # back and rounded vowels
    "O": ("AO",), "O:": ("AO",), "O2": ("AO",), "O~": ("AO",),
    "O@": ("AO", "R"), "o@": ("AO", "R"),
    "o:": ("OW",), "oU": ("OW",), "oU#": ("OW",),
    "OI": ("OY",),
    "u": ("UW",), "u:": ("UW",), "Uu": ("UW",),
    "U": ("UH",), "U@": ("UH", "R"), "u@": ("UH", "R"),
    # diphthongs and triphthongs
    "aI": ("AY",), "aI2": ("AY",), "aI@": ("AY", "ER"), "aI3": ("AY", "ER"),
    "aU": ("AW",), "aU@": ("AW", "ER"),
    # stops and affricates
    "p": ("P",), "b": ("B",), "t": ("T",), "d": ("D",), "k": ("K",), "g": ("G",),
    "t#": ("T",), "t2": ("T",), "d#": ("D",), "?": ("T",),
    "tS": ("CH",), "dZ": ("JH",),
    # fricatives
    "f": ("F",), "v": ("V",), "T": ("TH",), "D": ("DH",),
    "s": ("S",), "s2": ("S",), "z": ("Z",), "z#": ("Z",), "z/2": ("Z",),
    "S": ("SH",), "Z": ("ZH",), "h": ("HH",), "C": ("HH",), "x": ("K",),
    # nasals
    "m": ("M",), "n": ("N",), "N": ("NG",),
    "m-": ("AH", "M"), "n-": ("AH", "N"),
    # approximants
    "l": ("L",), "l/": ("L",), "l/2": ("L",), "l/3": ("L",), "l-": ("AH", "L"),
    "r": ("R",), "r-": ("R",), "r/": ("R",),
    "w": ("W",), "w#": ("W",), "j": ("Y",), ";": ("Y",),
}

_ESPEAK_STRESS = "',=%!"


def from_espeak(symbol: str) -> tuple[str, ...]:
    """Map an eSpeak NG English phoneme mnemonic to one or two canonical phones."""
    text = symbol.strip().lstrip(_ESPEAK_STRESS)
    try:
        return _ESPEAK[text]
    except KeyError:
        raise UnknownPhoneError(symbol, "espeak") from None


# --------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------


def from_facerl(symbol: str) -> str:
    """Identity on canonical phones; anything else raises :class:`UnknownPhoneError`."""
    if symbol in _PHONE_SET:
        return symbol
    raise UnknownPhoneError(symbol, "facerl")


CONVERTERS: dict[str, Callable[[str], str]] = {
    "arpabet": from_arpabet,
    "xsampa": from_xsampa,
    "ipa": from_ipa,
    "facerl": from_facerl,
}


def convert(symbol: str, alphabet: str) -> str:
    """Convert ``symbol`` from ``alphabet`` (a key of :data:`CONVERTERS`) to a canonical phone."""
    try:
        converter = CONVERTERS[alphabet]
    except KeyError:
        known = ", ".join(sorted(CONVERTERS))
        raise ValueError(f"unknown phone alphabet {alphabet!r} (known: {known})") from None
    return converter(symbol)
