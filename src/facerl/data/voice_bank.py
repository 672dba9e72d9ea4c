"""Many eSpeak NG voices for the synthetic corpus, independent of its subjects: a voice is not a face.

Mapping onto subjects and splits
--------------------------------
Subjects (``SynthTalk_XX``) are a face identity + a speaking style and keep VOCASET's 8 train / 2 val /
2 test split. Voices are a separate bank of custom eSpeak variants with one **disjoint pool per split**
(default 96 train, 16 val, 16 test = 128 voices). Every clip of a subject is spoken by a voice of its
split's pool: the split's clips are shuffled (seeded) and dealt the pool's voices in turn, the clips the
reader uses first (all train clips; sentences 21-40 of val/test subjects), so each voice speaks equally
often (±1 clip) and across several subjects.

Why: with one voice per subject a model can learn 12 voices (and tell the subject from the voice) instead
of speech. Here the voice says nothing about the face or style, train has many voices (~3 clips each), and
val/test voices are never heard in training: the held-out splits measure unseen faces/styles *and*
unheard voices at once.

A voice
-------
One of three kinds, dealt 2 male : 2 female : 1 child within every pool, on top of a base variant shipped
with eSpeak NG (``KINDS``: m1-m8, f1-f5, Klatt-synthesiser variants, and a few contributed ones), each
kind dealing its bases in turn: the base's formant table is rescaled to a sampled vocal-tract size
(formant frequencies relative to eSpeak's adult male) and every formant jittered in frequency, height and
bandwidth; pitch base and top (Hz) from the kind's range; flutter, roughness, voicing, consonant loudness,
breathiness (some voices), spectral tilt (``tone``), a faint echo (some voices), speaking rate and
volume. Prosody keywords of the base (``stressAdd``, ``intonation``) are left out. A draw that lies
closer than ``MIN_GAP`` in ``Traits`` (pitch, vocal-tract size, tilt, breathiness, rate, base) to an
earlier voice is redrawn. Measured with ``benchmarks/voice_diversity.py``: no two voices of the default
bank are near-identical, and every voice is recognised among all 128 from other sentences.

Licence: the voices are eSpeak NG variant files derived from eSpeak NG's own (GPL-3.0-or-later); corpora
record that in ``corpus.json`` ``provenance``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from facerl.speech.espeak import Variant, Voice, bundled_variant

SPLITS = ("train", "val", "test")
LANGUAGE = "en-us"
RATE_WPM = (140, 190)        # eSpeak words/min: the sentence generator's 2-5 s window still fits
VOLUME = (45, 75)            # eSpeak amplitude (default 100); louder clips are re-spoken quieter anyway
KIND_CYCLE = ("male", "female", "male", "female", "child")
MIN_GAP = 1.5                # smallest trait distance to any earlier voice (see trait_distance)
TRIES = 40                   # draws per voice before the most distant one is taken
_DEFAULT_FORMANT = (100, 100, 100, 0)
_DEFAULT_TONE = (600, 170, 1200, 135, 2000, 110, 3000, 110)   # eSpeak's own tone curve (Hz, amplitude)
_BREATHW = (150, 150, 200, 200, 400, 400, 600, 600)


@dataclass(frozen=True)
class Kind:
    bases: tuple[str, ...]         # eSpeak variants to start from, dealt in turn
    pitch_hz: tuple[float, float]  # base pitch range
    top: tuple[float, float]       # pitch top as a multiple of the base
    tract: tuple[float, float]     # mean F1-F3 frequency, relative to eSpeak's adult male (1.0)


# Bases are acoustically distinct at equal pitch (benchmarks/voice_diversity.py's measure): near-twins
# (klatt2 ~ klatt, klatt5 ~ klatt4, adam ~ klatt6, linda/aunty ~ belinda/f4) are left out. Female Klatt
# voices made the closest pairs (Klatt ignores `tone` and `breath`), so only males and one child base use it.
KINDS = {
    "male": Kind(("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "klatt3", "klatt4", "edward", "robert",
                  "quincy", "max", "iven", "michel"), (65, 115), (1.2, 1.6), (0.90, 1.05)),
    "female": Kind(("f1", "f2", "f3", "f4", "f5", "belinda", "anika", "Alicia", "shelby", "grandma"),
                   (140, 200), (1.2, 1.55), (1.07, 1.21)),
    "child": Kind(("f1", "f2", "f3", "f5", "klatt3", "belinda", "anika", "shelby"), (215, 290), (1.15, 1.45),
                  (1.21, 1.35)),
}
BASE_VARIANTS = tuple(sorted({b for k in KINDS.values() for b in k.bases}))


@dataclass(frozen=True)
class Traits:
    """The few numbers that make voices sound different, for spacing them apart (and for analysis)."""

    pitch_hz: float   # base pitch
    tract: float      # vocal-tract size as mean F1-F3 frequency relative to eSpeak's adult male
    tilt: float       # -1 (bright) .. 1 (dark): bass boost / treble cut of the tone curve
    breath: float     # breath-noise level, 0 = none
    rate: int         # words per minute


@dataclass(frozen=True)
class VoiceSpec:
    id: str          # e.g. train_017
    split: str
    kind: str        # male | female | child
    base: str        # the bundled variant it started from
    rate: int        # words per minute
    volume: int      # eSpeak amplitude, below its default 100 so that loud variants rarely clip
    variant: Variant
    traits: Traits

    @property
    def voice(self) -> Voice:
        # pitch and range stay at eSpeak's neutral 50: the variant's own `pitch` line sets them in Hz
        return Voice(name=f"{LANGUAGE}+{self.variant.name}", rate=self.rate, volume=self.volume)

    def record(self) -> dict:
        """Everything needed to speak this voice again (corpus.json)."""
        return {"split": self.split, "kind": self.kind, "base": self.base, "language": LANGUAGE,
                "rate": self.rate, "volume": self.volume, "traits": asdict(self.traits),
                "variant": asdict(self.variant), "variant_file": self.variant.text()}


def trait_distance(a: Traits, b: Traits, same_base: bool) -> float:
    """Roughly "just clearly different" = 1: 15 % in pitch, 6 % in vocal-tract size, 0.6 in tilt, 3 in
    breathiness, 12 % in rate; another base variant counts 1.5."""
    return float(np.sqrt((np.log(a.pitch_hz / b.pitch_hz) / np.log(1.15)) ** 2
                         + (np.log(a.tract / b.tract) / np.log(1.06)) ** 2 + ((a.tilt - b.tilt) / 0.6) ** 2
                         + ((a.breath - b.breath) / 3.0) ** 2 + (np.log(a.rate / b.rate) / np.log(1.12)) ** 2
                         + (0.0 if same_base else 1.5 ** 2)))


def _int(x: float) -> int:
    return round(float(x))  # a plain int (numpy scalars would not serialise as JSON integers)


def _tilted(tone: tuple[int, ...], tilt: float) -> tuple[int, ...]:
    """Tone curve (Hz, amplitude) pairs with bass raised and treble lowered by ``tilt`` (or the reverse)."""
    out = []
    for hz, amp in zip(tone[::2], tone[1::2]):
        slope = float(np.clip(-0.5 * np.log2(max(hz, 50) / 1200.0), -0.6, 0.6))
        out += [hz, int(np.clip(round(amp * np.exp(tilt * slope)), 10, 255))]
    return tuple(out)


def sample_voice(rng: np.random.Generator, voice_id: str, split: str, kind: str, base_name: str) -> VoiceSpec:
    """One voice of ``kind`` on top of the bundled variant ``base_name``, drawn from ``rng``."""
    k = KINDS[kind]
    base = bundled_variant(base_name)
    rows = list(base.formants) + [_DEFAULT_FORMANT] * (9 - len(base.formants))
    base_tract = np.mean([r[0] for r in rows[1:4]]) / 100.0
    tract = rng.uniform(*k.tract)
    formants = []
    for freq, height, width, add in rows:
        formants.append((_int(freq * tract / base_tract * np.exp(rng.normal(0.0, 0.03))),
                         _int(height * rng.uniform(0.8, 1.25)),
                         _int(width * rng.uniform(0.7, 1.5)), add))
    pitch = rng.uniform(*k.pitch_hz)
    top = pitch * rng.uniform(*k.top)
    breath = rng.uniform(1.0, 6.0) if rng.random() < 0.4 else 0.0
    tilt = rng.uniform(-1.0, 1.0)
    if base.klatt:  # the Klatt synthesiser ignores `tone` and `breath` (measured): do not pretend otherwise
        breath, tilt = 0.0, 0.0
    breath_row = tuple(_int(breath * w) for w in (0.0, 0.6, 1.0, 1.0, 1.0, 0.8, 0.5, 0.5)) if breath else ()
    echo = (int(rng.uniform(60, 160)), int(rng.uniform(2, 8))) if rng.random() < 0.3 else (0, 0)
    variant = Variant(
        name=f"facerl_{voice_id}",
        gender="male" if kind == "male" else "female",
        pitch=(_int(pitch), _int(top)),
        formants=tuple(formants),
        flutter=int(rng.integers(0, 16)),
        roughness=int(rng.integers(0, 7)),
        voicing=_int((base.voicing or 100) * rng.uniform(0.85, 1.15)),
        consonants=(int(rng.uniform(75, 130)), int(rng.uniform(85, 130))),
        breath=breath_row,
        breathw=_BREATHW if breath else (),
        tone=() if base.klatt else _tilted(base.tone or _DEFAULT_TONE, tilt),
        echo=echo,
        klatt=base.klatt,
    )
    rate = int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1))
    volume = int(rng.integers(VOLUME[0], VOLUME[1] + 1))
    traits = Traits(round(float(pitch), 2), round(float(tract), 4), round(float(tilt), 3), round(float(breath), 2),
                    rate)
    return VoiceSpec(voice_id, split, kind, base_name, rate, volume, variant, traits)


def voice_pools(seed: int, sizes: dict[str, int]) -> dict[str, list[VoiceSpec]]:
    """``{split: [VoiceSpec, ...]}`` with ``sizes[split]`` voices each, deterministic for (seed, sizes).

    Voices are made in order (train, val, test). Kinds cycle 2 male : 2 female : 1 child within every pool;
    each kind deals its base variants in a seeded order; a voice is redrawn (from its own stream, keyed by
    seed, split and index) while it lies closer than ``MIN_GAP`` in traits to an earlier voice of any kind
    and split, so no two voices are near-twins and no held-out voice copies a training one.
    """
    base_order = {kind: [k.bases[i] for i in np.random.default_rng([seed, 6, n]).permutation(len(k.bases))]
                  for n, (kind, k) in enumerate(KINDS.items())}
    made: dict[str, list[VoiceSpec]] = {kind: [] for kind in KINDS}
    pools: dict[str, list[VoiceSpec]] = {split: [] for split in SPLITS}
    bank: list[VoiceSpec] = []
    for s, split in enumerate(SPLITS):
        for i in range(sizes[split]):
            kind = KIND_CYCLE[i % len(KIND_CYCLE)]
            base = base_order[kind][len(made[kind]) % len(base_order[kind])]
            rng = np.random.default_rng([seed, 4, s, i])
            best, best_gap = None, -1.0
            for _ in range(TRIES):
                voice = sample_voice(rng, f"{split}_{i:03d}", split, kind, base)
                gap = min((trait_distance(voice.traits, v.traits, v.base == base) for v in bank), default=np.inf)
                if gap > best_gap:
                    best, best_gap = voice, gap
                if gap >= MIN_GAP:
                    break
            made[kind].append(best)
            bank.append(best)
            pools[split].append(best)
    return pools


def deal_voices(clips: list[tuple[str, int]], used_first: list[bool], pool: list[VoiceSpec],
                rng: np.random.Generator) -> list[VoiceSpec]:
    """A voice of ``pool`` for each clip (subject, sentence): clips in random order, those the reader uses
    (``used_first``) before the others, dealt the pool's voices in turn."""
    perm = rng.permutation(len(clips))
    order = sorted(range(len(clips)), key=lambda i: (not used_first[i], perm[i]))
    voices: list[VoiceSpec | None] = [None] * len(clips)
    for turn, i in enumerate(order):
        voices[i] = pool[turn % len(pool)]
    return voices
