"""The full default corpus (12 speakers x 40 sentences in 128 voices): slow, run with `-m slow`."""

import json
from collections import Counter

import pytest

from facerl.animation.ground_truth import CLOSURE_THRESHOLD_M, FPS
from facerl.data.dataset import VocaDataset, spec_from_corpus
from facerl.data.layout import Layout
from facerl.data.measures import BILABIALS, clip_lip_gap, phone_frames
from facerl.data.synthetic import CorpusConfig, build_corpus
from facerl.speech.timing import read_phone_csv


@pytest.mark.slow
def test_default_corpus_builds_with_every_bilabial_closed(tmp_path):
    summary = build_corpus(CorpusConfig(out=str(tmp_path / "synthetic")), progress=False)
    assert summary.clips == 480 and summary.speakers == 12
    spec = spec_from_corpus(summary.root)
    assert [len(VocaDataset(spec, s, with_phones=False)) for s in ("train", "val", "test")] == [320, 40, 40]
    layout = Layout(tmp_path / "synthetic")
    durations, misses, bilabials = [], 0, 0
    for clip in layout.clips():
        gap = clip_lip_gap(layout, clip)
        phones = read_phone_csv(layout.phones(clip))
        durations.append(phones[-1].end_s)
        for p in phones:
            inside = phone_frames(p, len(gap), FPS)
            if p.phone in BILABIALS and inside.any():
                bilabials += 1
                misses += gap[inside].min() >= CLOSURE_THRESHOLD_M
    assert bilabials > 2000 and misses == 0
    assert min(durations) >= 2.0 - 1e-3 and max(durations) <= 5.0 + 1e-3
    meta = json.loads(layout.meta_path.read_text())
    assert summary.voices == len(meta["voices"]) == 128      # every voice of every pool speaks
    for split, n_read in (("train", 320), ("val", 40), ("test", 40)):
        read = VocaDataset(spec, split, with_phones=False).names
        heard = Counter(meta["clips"][name]["voice"] for name in read)
        assert len(read) == n_read and len(heard) == meta["voice_pools"][split]   # the reader hears them all
        assert all(meta["voices"][v]["split"] == split for v in heard)
