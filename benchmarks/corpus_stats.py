"""Print ground-truth statistics of a built corpus: clip lengths, bilabial closures, open-vowel openings, blinks,
voices per split.

    .venv/bin/python benchmarks/corpus_stats.py [data/synthetic]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from facerl.animation.ground_truth import CLOSURE_THRESHOLD_M, FPS
from facerl.data.layout import Layout
from facerl.data.measures import BILABIALS, OPEN_VOWELS, clip_lip_gap, phone_frames
from facerl.head.arkit import ARKIT_INDEX
from facerl.speech.timing import read_phone_csv


def main() -> None:
    layout = Layout(Path(sys.argv[1] if len(sys.argv) > 1 else "data/synthetic"))
    lengths, closed, bilabials, peaks, blinks = [], 0, 0, [], 0
    for clip in layout.clips():
        gap = clip_lip_gap(layout, clip)
        lengths.append(len(gap) / FPS)
        for p in read_phone_csv(layout.phones(clip)):
            inside = phone_frames(p, len(gap), FPS)
            if not inside.any():
                continue
            if p.phone in BILABIALS:
                bilabials += 1
                closed += gap[inside].min() < CLOSURE_THRESHOLD_M
            elif p.phone in OPEN_VOWELS and p.duration_s >= 0.09:
                peaks.append(gap[inside].max())
        eye = np.load(layout.blendshapes(clip))[:, ARKIT_INDEX["eyeBlinkLeft"]] > 0.5
        blinks += int((np.diff(eye.astype(int)) == 1).sum())
    lengths, peaks = np.array(lengths), np.array(peaks) * 1000
    print(f"clips: {len(lengths)}  audio: {lengths.sum() / 60:.1f} min  length: {lengths.min():.2f}-"
          f"{lengths.max():.2f} s (median {np.median(lengths):.2f})")
    print(f"bilabials closed (gap < {CLOSURE_THRESHOLD_M * 1000:.0f} mm at some frame inside): "
          f"{closed}/{bilabials} = {100 * closed / max(bilabials, 1):.1f} %")
    print(f"open vowels >= 90 ms: peak inner-lip gap median {np.median(peaks):.1f} mm, "
          f"10th pct {np.percentile(peaks, 10):.1f} mm, max {peaks.max():.1f} mm (n={len(peaks)})")
    print(f"blinks: {blinks} in {lengths.sum() / 60:.1f} min = {blinks / (lengths.sum() / 60):.1f} per min")
    meta = json.loads(layout.meta_path.read_text()) if layout.meta_path.exists() else {}
    if "voices" in meta:  # corpora built since the voice bank (issue 10)
        for split in ("train", "val", "test"):
            voices = {k: v for k, v in meta["voices"].items() if v["split"] == split}
            clips = [v["clips"] for v in voices.values()]
            kinds = Counter(v["kind"] for v in voices.values())
            print(f"{split} voices: {len(voices)} ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), "
                  f"{min(clips)}-{max(clips)} clips each")


if __name__ == "__main__":
    main()
