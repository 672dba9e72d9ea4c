"""Out-of-domain voice sets: the same kind of ground truth as the corpus, spoken by voices facerl never
trained on (`facerl data voices`), for `facerl evaluate-voices`.

Each *source* is one engine + voice (or real recordings) and becomes one subject ``Voices_<source>_TA`` of a
VOCASET-layout root (default ``data/voices``), with a neutral face (the head's template, no identity shape) so
that only the voice differs from what the actor knows. Ground truth is built from the source's phones exactly
as for the corpus (``clip_from_speech``): engines with exact timings (Piper, flite, Festival) give them
directly; SVOX Pico and the real recordings are force-aligned offline (pocketsphinx). Sentences come from
the corpus grammar under another seed, so they are (almost surely) not training sentences.

Real recordings: the Debian packages ``asterisk-core-sounds-en-wav`` + ``asterisk-core-sounds-en`` (one
recorded female voice, CC-BY-SA 3.0, 8 kHz, resampled to 16 kHz) when installed; skipped with a message
otherwise. ``voices.json`` records every source's engine, voice, licence and how its phones were obtained.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facerl.animation.style import SpeakerStyle
from facerl.audio import SAMPLE_RATE, read_wav
from facerl.data.layout import Layout
from facerl.errors import FacerlError
from facerl.speech import engines
from facerl.speech.sentences import make_sentences
from facerl.speech.timing import Phone
from facerl.utils.io import save_text

SENTENCE_SEED = 1009          # not the corpus's seed: held-out sentences
ASTERISK_WAVS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
ASTERISK_LICENCE = "Asterisk core sounds (Allison Smith), CC-BY-SA 3.0"


@dataclass(frozen=True)
class Source:
    name: str                  # row label, e.g. piper-joe
    engine: str                # piper | pico | flite | festival | recorded
    voice: str
    rate: float = 1.0
    pitch: float = 1.0

    @property
    def subject(self) -> str:
        return f"Voices_{self.name}_TA"


SOURCES = (
    Source("piper-joe", "piper", "joe"),
    Source("pico-us", "pico", "en-US"),
    Source("pico-gb", "pico", "en-GB"),
    Source("flite-slt", "flite", "slt"),
    Source("flite-rms", "flite", "rms"),
    Source("flite-awb", "flite", "awb"),
    Source("flite-kal", "flite", "kal"),
    Source("festival-kal", "festival", "kal_diphone"),
    Source("festival-slt", "festival", "cmu_us_slt_arctic_hts"),
    Source("recorded-allison", "recorded", "allison"),
)


def source_available(source: Source) -> str | None:
    """None when the source can be built here, else why not."""
    if source.engine == "recorded":
        if not (ASTERISK_WAVS.is_dir() and ASTERISK_TEXT.is_file()):
            return ("real recordings need the Debian packages asterisk-core-sounds-en-wav and "
                    "asterisk-core-sounds-en (optional: apt-get install them)")
        return _aligner_missing()
    reason = engines.available(source.engine)
    if reason is None and engines.ENGINES[source.engine].timings == "aligned":
        return _aligner_missing()
    return reason


def _aligner_missing() -> str | None:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return "forced alignment needs pocketsphinx (pip install pocketsphinx==5.1.1)"
    return None


def asterisk_prompts(n: int, seed: int, min_s: float = 1.5, max_s: float = 7.0) -> list[tuple[Path, str]]:
    """``n`` (wav, transcript) pairs of plain spoken sentences (no digits or keypad symbols), chosen with
    ``seed``, sorted by name."""
    prompts = []
    with gzip.open(ASTERISK_TEXT, "rt", encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    for line in lines:
        name, sep, text = line.partition(":")
        text = text.strip()
        if not sep or name.startswith(";") or "/" in name or not re.fullmatch(r"[A-Za-z ,.'?!-]+", text):
            continue
        wav = ASTERISK_WAVS / f"{name.strip()}.wav"
        if wav.is_file() and len(text.split()) >= 3:
            prompts.append((wav, text))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(prompts))
    chosen = []
    for i in order:
        wav, text = prompts[i]
        seconds = wav.stat().st_size / (2 * 8000)  # 8 kHz 16-bit mono, header aside
        if min_s <= seconds <= max_s:
            chosen.append(prompts[i])
        if len(chosen) == n:
            break
    return sorted(chosen)


def _speech(source: Source, text: str) -> tuple[np.ndarray, list[Phone], str]:
    """(audio, phones, how the phones were obtained) of one sentence."""
    speech = engines.speak(source.engine, text, source.voice, source.rate, source.pitch)
    if speech.phones is not None:
        return speech.audio, speech.phones, "exact"
    from facerl.speech.align import align_text

    return speech.audio, align_text(speech.audio, text), "aligned"


def build_voice_sets(out: str | Path, sources: list[str] | None = None, clips: int = 12, seed: int = 0,
                     overwrite: bool = False, progress: bool = True) -> dict:
    """Write one subject per available source under ``out``; returns the manifest (also ``voices.json``)."""
    from facerl.data.synthetic import clip_from_speech

    wanted = [s for s in SOURCES if sources is None or s.name in sources or s.engine in sources]
    unknown = sorted(set(sources or ()) - {s.name for s in SOURCES} - {s.engine for s in SOURCES})
    if unknown:
        raise FacerlError(f"unknown voice source(s) {', '.join(unknown)} "
                          f"(known: {', '.join(s.name for s in SOURCES)})")
    layout = Layout(Path(out))
    layout.prepare("facerl data voices", overwrite=overwrite)
    texts = make_sentences(clips, SENTENCE_SEED + seed)
    manifest: dict = {"name": "facerl-voices", "seed": seed, "clips_per_source": clips, "requested": sources,
                      "fps": 60, "sample_rate": SAMPLE_RATE, "sources": {}, "skipped": {}}
    for source in wanted:
        reason = source_available(source)
        if reason:
            print(f"skipping voice source {source.name}: {reason}")
            manifest["skipped"][source.name] = reason
            continue
        items = (asterisk_prompts(clips, seed) if source.engine == "recorded" else [(None, t) for t in texts])
        made, failed, how = [], [], ""
        for k, (wav, text) in enumerate(tqdm(items, desc=f"voices: {source.name}", unit="clip",
                                             disable=not progress, leave=False), start=1):
            try:
                if wav is None:
                    audio, phones, how = _speech(source, text)
                else:
                    from facerl.speech.align import align_text

                    audio, how = read_wav(wav), "aligned"
                    phones = align_text(audio, text)
            except FacerlError as exc:  # an engine or the aligner failing on one sentence: count it, go on
                failed.append({"text": text, "error": str(exc)})
                continue
            name = clip_from_speech(phones, audio, str(layout.root), source.subject, k, SpeakerStyle(),
                                    seed=seed)
            made.append({"clip": name, "text": text, **({"recording": wav.name} if wav is not None else {})})
        info = engines.ENGINES.get(source.engine)
        manifest["sources"][source.name] = {
            **asdict(source), "subject": source.subject, "phones": how or "none",
            "licence": info.licence if info else ASTERISK_LICENCE, "clips": made, "failed": failed}
        print(f"voice source {source.name}: {len(made)} clips ({how or 'none'} phones"
              f"{f', {len(failed)} failed' if failed else ''})")
    save_text(layout.root / "voices.json", json.dumps(manifest, indent=1))
    return manifest


def read_manifest(root: str | Path) -> dict:
    path = Path(root) / "voices.json"
    if not path.is_file():
        raise FacerlError(f"{path} not found: build the voice sets first (facerl data voices --out {root})")
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest["sources"], dict):  # the key every reader needs
            raise TypeError("sources")
    except (ValueError, KeyError, TypeError) as exc:
        raise FacerlError(f"{path} is damaged ({type(exc).__name__}); rebuild the voice sets") from None
    return manifest
