"""`facerl evaluate-voices`: how an actor does on voices it never heard, one row per voice source.

Rows: the corpus's held-out test speakers (in-domain: eSpeak voices of the training kind) and every source of
a voice-set root (`facerl data voices`: other synthesisers, real recordings). Every clip is animated in the
style-independent (average) mode on the neutral face it was built on. Columns (`VOICE_COLUMNS`): the inner-lip
opening correlation r (per clip at its best lag within +-6 frames, mean over clips), the mean |best lag| in
frames, the 2 mm closure rate of bilabials, the lip-reader's viseme accuracy, LVE, MTM and the judge's sync
margin.

The actor was trained on eSpeak only, so every non-eSpeak source is a held-out engine by construction (the
leave-one-engine-out protocol for a multi-engine corpus trains one actor per left-out engine and scores it
on that engine's row).

Dimensions: B clips, T frames (30 fps), V vertices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from facerl.data.dataset import DatasetSpec, VocaDataset
from facerl.data.voices import read_manifest
from facerl.eval.evaluate import COLUMNS, Judge, load_lipreader, load_references, score
from facerl.eval.predict import predict_dataset
from facerl.models.checkpoint import load_actor

VOICE_KEYS = ("opening_r", "opening_lag", "closure_rate", "lipread_acc", "lve", "mtm_ms", "judge_sync")
VOICE_COLUMNS = [c for key in VOICE_KEYS for c in COLUMNS if c[0] == key]
IN_DOMAIN = "eSpeak test speakers (in domain)"


def voice_specs(voices_root: str | Path) -> dict[str, DatasetSpec]:
    """One single-subject 'test' split per voice source of a voice-set root (sentences 1..999)."""
    manifest = read_manifest(voices_root)
    return {name: DatasetSpec(str(voices_root), [], [], [info["subject"]], eval_sentences=(1, 999))
            for name, info in manifest["sources"].items() if info["clips"]}


def predict_average(actor, spec: DatasetSpec, device) -> dict[str, np.ndarray]:
    """{clip: (T, V, 3)} of the test split in the style-independent mode."""
    out = {}
    for clips, pred in predict_dataset(actor, VocaDataset(spec, "test", with_phones=False), [-1], device):
        for b, clip in enumerate(clips):
            out[clip.name] = pred[b, 0, :len(clip.vertices)].numpy().reshape(len(clip.vertices), -1, 3)
    return out


def evaluate_voices(actors: dict[str, Path], sources: dict[str, DatasetSpec], judge_dir: Path | None,
                    device: torch.device, lipreader_dir: Path | None = None) -> list[dict]:
    """Rows ``{method, source, ...metrics}``: every actor on every source (ground truth is the ceiling r 1)."""
    judge = Judge(judge_dir, str(device)) if judge_dir is not None else None
    reader = load_lipreader(lipreader_dir, str(device))
    rows = []
    for label, checkpoint in actors.items():
        actor, meta, _ = load_actor(checkpoint, device)
        for source, spec in tqdm(sources.items(), desc=f"voices: {label}", unit="source", leave=False):
            refs, regions = load_references(spec, "test")
            if refs[0].template.size != meta.n_vertices * 3:
                continue  # another mesh (e.g. VOCASET's in-domain split against synthetic voices)
            preds = predict_average(actor, spec, device)
            metrics = score([(r, preds[r.name]) for r in refs], regions, judge=judge, lipreader=reader)
            rows.append({"method": f"{label}: {source}", "actor": label, "source": source, **metrics})
    return rows
