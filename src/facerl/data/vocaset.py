"""Convert VOCASET's raw release into the layout facerl reads.

VOCASET (Cudeiro et al., CVPR 2019) ships ``data_verts.npy`` (N, 5023, 3) with all 60 fps frames,
``raw_audio_fixed.pkl`` {subject: {sentence: {"audio": int16 array, "sample_rate": 22000}}},
``subj_seq_to_idx.pkl`` {subject: {sentence: {frame: row in data_verts}}} and ``templates.pkl``;
FLAME's region masks come as ``FLAME_masks.pkl``. This does what FaceFormer's
``vocaset/process_voca_data.py`` does: one ``vertices_npy/<subject>_<sentence>.npy`` (T60, 5023*3)
and one 16 kHz ``wav/<subject>_<sentence>.wav`` per sequence.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facerl.audio import resample, to_float, write_wav
from facerl.data.layout import Layout, load_pickle
from facerl.errors import FacerlError
from facerl.utils.io import atomic_path, save_npy, save_pickle

RAW_FILES = ("data_verts.npy", "raw_audio_fixed.pkl", "subj_seq_to_idx.pkl", "templates.pkl")


def convert_vocaset(raw_dir: str | Path, out: str | Path, masks: str | Path | None = None,
                    overwrite: bool = False, progress: bool = True) -> int:
    """Write the VOCASET layout under ``out`` from a raw VOCASET folder; returns the number of clips."""
    raw_dir, layout = Path(raw_dir), Layout(Path(out))
    missing = [f for f in RAW_FILES if not (raw_dir / f).is_file()]
    if missing:
        raise FacerlError(f"{raw_dir} is missing VOCASET file(s): {', '.join(missing)}")
    if masks is not None and not Path(masks).is_file():
        raise FacerlError(f"region mask file not found: {masks}")
    try:
        verts = np.load(raw_dir / "data_verts.npy", mmap_mode="r")  # (N, V, 3)
    except (ValueError, OSError) as exc:
        raise FacerlError(f"cannot read {raw_dir / 'data_verts.npy'} ({exc})") from None
    audio = load_pickle(raw_dir / "raw_audio_fixed.pkl")
    index = load_pickle(raw_dir / "subj_seq_to_idx.pkl")
    templates = load_pickle(raw_dir / "templates.pkl")
    untemplated = sorted(set(index) - set(templates))
    if untemplated:
        raise FacerlError(f"subject(s) missing from {raw_dir / 'templates.pkl'}: {', '.join(untemplated)}")
    layout.prepare("facerl data convert-vocaset", overwrite=overwrite)

    jobs = [(s, q) for s in sorted(index) for q in sorted(index[s]) if q in audio.get(s, {})]
    for subject, sequence in tqdm(jobs, desc="converting VOCASET", unit="clip", disable=not progress):
        frames = index[subject][sequence]
        rows = [frames[k] for k in sorted(frames)]
        if not rows or max(rows) >= len(verts) or min(rows) < 0:
            raise FacerlError(f"{subject}/{sequence}: frame rows outside data_verts.npy (0..{len(verts) - 1})")
        clip = f"{subject}_{sequence}"
        entry = audio[subject][sequence]
        write_wav(layout.wav(clip), resample(to_float(np.asarray(entry["audio"])), int(entry["sample_rate"])))
        save_npy(layout.vertices(clip), np.asarray(verts[rows], np.float32).reshape(len(rows), -1))
    save_pickle(layout.templates_path, {k: np.asarray(v, np.float32) for k, v in templates.items()})
    if masks is not None:
        with atomic_path(layout.root / "regions.pkl") as tmp:
            shutil.copyfile(masks, tmp)
    return len(jobs)
